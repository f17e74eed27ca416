"""SICE Part1 scenes held out from training, and the real low/normal-light pairs made from them.

The paper scores SICE with the dataset's reference images; the frames we have come without them, so a
scene's reference is the Mertens exposure fusion of its own (aligned) frames, the same construction
as the contrastive positives. To keep that evaluation independent, a fixed list of scenes (every
fifth scene of the CSV's multi-frame groups, in natural id order; :data:`HELD_OUT_FILE`) is never read
for training: :func:`sclle.data.contrast.build_pool` and the trainer's extra photos skip it.

The pairs themselves are built by :mod:`sclle.evaluate.sice_pairs`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

#: Package file with the held-out scene ids and their frame file names (documented, versioned).
HELD_OUT_FILE = "sice_heldout.json"
#: A file of this name in a folder of copied SICE frames (e.g. a device pack) marks it as SICE too.
HELD_OUT_MARKER = ".sice-frames"
#: Every ``HOLD_OUT_EVERY``-th multi-frame scene (natural id order) is held out.
HOLD_OUT_EVERY = 5


def held_out_scenes() -> dict[str, list[str]]:
    """``{scene id: [frame file names]}`` of the held-out SICE Part1 scenes."""
    data = json.loads((resources.files("sclle.data") / HELD_OUT_FILE).read_text())
    return {str(k): list(v) for k, v in data["scenes"].items()}


def held_out_files() -> set[str]:
    """File names (e.g. ``123.jpg``) of every held-out frame: what training must never read."""
    return {f for frames in held_out_scenes().values() for f in frames}


def is_sice_folder(folder: str | Path) -> bool:
    """A SICE Part1 frame folder as shipped (flat frames + the heuristic sequence CSV)."""
    return any(Path(folder).glob("sequences*.csv"))


def choose_held_out(scene_ids: list[str], frames: dict[str, list[str]]) -> dict[str, list[str]]:
    """The rule behind :data:`HELD_OUT_FILE` (kept to regenerate and to test it)."""
    return {sid: frames[sid] for i, sid in enumerate(scene_ids) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1}
