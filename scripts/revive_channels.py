"""Re-initialise a DCE-Net checkpoint's dead channels, keeping the network's output unchanged.

A thin shell over :func:`sclle.train.revive.revive_dead_channels` (why and how: its docstring). The
trainer resumes from the newest checkpoint of a run folder, so put the result there (keep the original):

    cp runs/cpu-scratch/checkpoints/step_0005208.pt /somewhere/step_0005208_orig.pt
    python scripts/revive_channels.py /somewhere/step_0005208_orig.pt runs/cpu-scratch/checkpoints/step_0005208.pt --replace
    sclle train --config configs/scl_cpu.yaml --out runs/cpu-scratch --resume --force
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sclle.core.files import atomic_save
from sclle.train.revive import revive_dead_channels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--eps", type=float, default=1e-20, help="incoming weights below this count as dead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replace", action="store_true", help="dst may exist (it is replaced atomically)")
    a = ap.parse_args()
    if a.dst.exists() and not a.replace:
        raise SystemExit(f"error: {a.dst} exists; pass --replace or choose another output")
    if a.dst.resolve() == a.src.resolve():
        raise SystemExit("error: the output would replace the input; keep the original elsewhere")
    ckpt = torch.load(a.src, map_location="cpu", weights_only=True)
    done = revive_dead_channels(ckpt, a.eps, a.seed)
    atomic_save(a.dst, lambda p: torch.save(ckpt, p))
    print(json.dumps({k: len(v) for k, v in done.items()}))


if __name__ == "__main__":
    main()
