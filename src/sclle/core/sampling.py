"""Which items a capped run takes: evenly spaced over the whole list, never the first N.

Datasets are often ordered (CamVid's splits are video sequences, SICE's scenes are numbered by
source), so the first N items would be one scene; evenly spaced items cover them all.
"""

from __future__ import annotations


def evenly_spaced(n: int, limit: int | None) -> list[int]:
    """Indices of ``limit`` items evenly spaced over ``range(n)``; all of them when ``limit`` is None or >= n."""
    if limit is None or not 0 < limit < n:
        return list(range(n))
    step = n / limit
    return [int(i * step) for i in range(limit)]
