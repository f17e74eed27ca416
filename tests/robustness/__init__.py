"""Seeded fuzzing of the command line (pytest marker ``robustness``)."""
