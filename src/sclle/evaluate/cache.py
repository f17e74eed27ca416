"""The score cache shared by ``sclle evaluate`` and ``sclle benchmark``: one SQLite file per folder.

Scores, luminance histograms and contact-sheet thumbnails are keyed by

    (method fingerprint, image content hash, dataset protocol[, metric])

so a re-run after adding a method, a metric or a few images only computes what is new. The file is
``<folder>/results.sqlite``, the folder being ``<report>/.cache`` unless the caller names one (the
scorecard shares one folder across its protocols). The table layout is the on-disk format: changing it
means bumping :data:`CACHE_VERSION`, which empties existing caches instead of misreading them.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from sclle.errors import SclleError

CACHE_VERSION = 1
#: Cache folder inside a report folder when the caller names none.
CACHE_DIRNAME = ".cache"
CACHE_FILENAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    method TEXT, image TEXT, protocol TEXT, metric TEXT, value REAL,
    PRIMARY KEY (method, image, protocol, metric));
CREATE TABLE IF NOT EXISTS blobs (
    kind TEXT, method TEXT, image TEXT, protocol TEXT, data BLOB,
    PRIMARY KEY (kind, method, image, protocol));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


def cache_file(out_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cache file of a report in ``out_dir`` (``cache_dir`` overrides the folder)."""
    folder = Path(cache_dir) if cache_dir else Path(out_dir) / CACHE_DIRNAME
    return folder / CACHE_FILENAME


class ResultCache:
    """Scores, histograms and thumbnails keyed by (method fingerprint, image hash, protocol).

    SQLite: one small file, safe against an interrupted run (the runner commits once per image).
    ``path=None`` keeps everything in memory (nothing reused across runs).
    """

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path) if path is not None else ":memory:")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if row is not None and row[0] != str(CACHE_VERSION):
                self.db.executescript("DELETE FROM scores; DELETE FROM blobs;")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CACHE_VERSION),))
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            raise SclleError(f"result cache is unusable ({exc}); delete it to start afresh", path) from exc

    def scores(self, method: str, image: str, protocol: str) -> dict[str, float]:
        rows = self.db.execute(
            "SELECT metric, value FROM scores WHERE method=? AND image=? AND protocol=?",
            (method, image, protocol),
        )
        return {k: (math.nan if v is None else float(v)) for k, v in rows}

    def put_scores(self, method: str, image: str, protocol: str, values: dict[str, float]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
            [(method, image, protocol, k, v) for k, v in values.items()],
        )

    def blob(self, kind: str, method: str, image: str, protocol: str) -> bytes | None:
        row = self.db.execute(
            "SELECT data FROM blobs WHERE kind=? AND method=? AND image=? AND protocol=?",
            (kind, method, image, protocol),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def put_blob(self, kind: str, method: str, image: str, protocol: str, data: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)", (kind, method, image, protocol, data)
        )

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()
