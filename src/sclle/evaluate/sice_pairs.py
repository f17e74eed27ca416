"""Real low/normal-light pairs from the held-out SICE Part1 scenes (:mod:`sclle.data.sice`).

For each held-out scene that passes the contrastive pool's alignment checks, its two darkest frames
are the inputs and the Mertens fusion of all its frames is the reference: ``low/<scene>_<k>.png`` and
``high/<scene>_<k>.png``, a folder :func:`sclle.evaluate.datasets.parse_dataset` reads as paired.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sclle.core.files import write_json
from sclle.data.pool_builder import PoolParams, check_scene, discover_scenes
from sclle.data.sice import held_out_scenes
from sclle.imageio import from_array, write_image


def build_pairs(source: str | Path, out_dir: str | Path, *, progress: bool = False) -> dict:
    """Write the held-out scenes' real pairs into ``out_dir/low`` and ``out_dir/high``; return a summary.

    Idempotent: existing pair files are kept (the fusion is deterministic), so a rerun costs a scan.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    (out / "low").mkdir(parents=True, exist_ok=True)
    (out / "high").mkdir(parents=True, exist_ok=True)
    summary_path = out / "pairs.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    wanted = held_out_scenes()
    scenes, _ = discover_scenes(source)
    scenes = [s for s in scenes if s.id in wanted]
    kept, dropped = [], []
    params = PoolParams()
    for scene in tqdm(scenes, desc="SICE pairs", unit="scene", disable=not progress):
        rec, frames, fused = check_scene(scene, params)
        if "reason" in rec:
            dropped.append({"id": scene.id, "reason": rec["reason"]})
            continue
        for k, frame in enumerate(frames[:2]):
            name = f"{scene.id}_{k}.png"
            for sub, img in (("low", frame), ("high", fused)):
                write_image(out / sub / name, from_array(img), img.astype(np.float32) / 255.0, overwrite=True)
        kept.append({"id": scene.id, "inputs": rec["frames"][:2], "frame_means": rec["frame_means"][:2]})
    summary = {"source": str(Path(source)), "scenes": kept, "dropped": dropped, "pairs": 2 * len(kept)}
    write_json(summary_path, summary, indent=1)
    return summary
