"""What every layer of sclle uses, and nothing else: the registry class, the weights resolver, boundary
checks, file helpers (atomic writes, natural sort, safe output paths) and the device/precision resolver.

``core`` imports nothing from the rest of the package (except :mod:`sclle.errors`), so any layer may import it.
"""
