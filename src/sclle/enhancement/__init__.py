"""Enhancing images: the execution engine, the Python API, batch jobs, export, and the methods registry."""
