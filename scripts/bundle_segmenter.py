"""Bundle a trained CamVid segmenter into ``src/sclle/weights/`` with its inference scale chosen on val.

    python scripts/bundle_segmenter.py .devdata/seg-ft/camvid-deeplabv3plus-lite0.safetensors \\
        --data-root ../shared/data/camvid --scales 1.0,1.25,1.5

Evaluates val mIoU at each candidate ``input_scale`` (see :class:`sclle.models.segmentation.DeepLabV3Plus`),
keeps the best **on val**, then reports test at that scale and at native scale (for the record, never for
choosing). The JSON beside the weights keeps the training metadata of the source export, the earlier
training stages given with ``--history``, and the scale-selection table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sclle.data.camvid import CLASS_NAMES
from sclle.models.segmentation import DEFAULT_SEGMENTER, load_segmenter, save_segmenter, segmenter_metadata
from sclle.train.segmentation import evaluate_tensors, preload


def _score(model, x, y) -> dict:
    model = model.to(memory_format=torch.channels_last)
    return evaluate_tensors(model, x, y, batch_size=4, amp=False, channels_last=True).summary(CLASS_NAMES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="exported segmenter (.safetensors with its .json)")
    ap.add_argument("--data-root", default="../shared/data/camvid")
    ap.add_argument("--scales", default="1.0,1.25,1.5")
    ap.add_argument("--history", type=Path, nargs="*", default=[], help="JSONs of earlier training stages")
    ap.add_argument(
        "--out", type=Path, default=Path("src/sclle/weights") / f"{DEFAULT_SEGMENTER}.safetensors"
    )
    args = ap.parse_args()
    cpu = torch.device("cpu")
    vx, vy = preload(args.data_root, "val", None, 2, cpu)
    selection = {}
    for s in (float(v) for v in args.scales.split(",")):
        selection[s] = _score(load_segmenter(args.source, input_scale=s), vx, vy)["miou"]
        print(f"val mIoU at input scale {s:g}: {100 * selection[s]:.2f}")
    best = max(selection, key=selection.get)
    tx, ty = preload(args.data_root, "test", None, 2, cpu)
    model = load_segmenter(args.source, input_scale=best)
    meta = segmenter_metadata(args.source)
    meta["training_stages"] = [segmenter_metadata(h) or json.loads(h.read_text()) for h in args.history]
    meta["input_scale"] = best
    meta["input_scale_selection"] = {
        "metric": "val mIoU",
        "candidates": {str(k): v for k, v in selection.items()},
    }
    meta["val"] = _score(model, vx, vy)
    meta["test"] = _score(model, tx, ty)
    meta["test_at_native_scale"] = _score(load_segmenter(args.source, input_scale=1.0), tx, ty)
    save_segmenter(model, args.out, meta)
    print(
        f"input scale {best:g} (best on val): val {100 * meta['val']['miou']:.2f}, "
        f"test {100 * meta['test']['miou']:.2f} (native {100 * meta['test_at_native_scale']['miou']:.2f})"
    )
    print(args.out)


if __name__ == "__main__":
    main()
