"""Copy a trained enhancer into the package as a bundled registry entry (``src/sclle/weights``).

    python scripts/bundle_enhancer.py runs/x/export/sclle-scl-camvid.safetensors --name sclle-default \
        --default --fast-scale 0.25 --meta docs/default_model_meta.json

The JSON beside the weights carries the registry metadata (sha256, params, recipe, data, loss
weights, scores); ``sclle.models.registry`` registers every such pair at import.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from sclle.core.files import sha256_file, write_json
from sclle.models.registry import build_model

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "sclle" / "weights"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path, help="exported DCE-Net safetensors (from `sclle train`)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--default", action="store_true")
    ap.add_argument("--fast-scale", type=float, default=0.25)
    ap.add_argument("--meta", type=Path, help="extra metadata JSON merged into the entry (scores, recipe)")
    a = ap.parse_args()
    sd = load_file(str(a.src))
    build_model(sd, source=a.src)  # refuses anything that is not a DCE-Net
    trained = (
        json.loads(a.src.with_suffix(".json").read_text()) if a.src.with_suffix(".json").is_file() else {}
    )
    file = f"{a.name}.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(WEIGHTS / file), metadata={"format": "pt"})
    meta = {
        "name": a.name,
        "kind": "enhancer",
        "file": file,
        "sha256": sha256_file(WEIGHTS / file),
        "default": a.default,
        "params": sum(v.numel() for v in sd.values()),
        "fast_scale": a.fast_scale,
        "source": "trained by the sclle project (SCL-LLE objective), see docs/training.md",
        "licence": "MIT, like sclle",
        "steps": trained.get("steps"),
        "data": trained.get("data"),
        "loss": trained.get("loss"),
        "config": trained.get("config"),
    }
    if a.meta:
        meta.update(json.loads(a.meta.read_text()))
    write_json(WEIGHTS / f"{a.name}.json", meta, indent=1)
    print(f"bundled {a.name}: {WEIGHTS / file} sha256 {meta['sha256'][:16]}...")


if __name__ == "__main__":
    main()
