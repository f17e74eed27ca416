"""Unlabelled photos as extra training inputs (e.g. SICE Part1 exposure frames).

The street scenes teach the semantic terms, but their darkened crops rarely show what real
photos look like at every exposure: well-exposed and over-exposed regions, real sensor noise, JPEG.
:class:`UnlabelledPhotos` presents a folder of images with the same ``get_uint8`` interface as
:class:`~sclle.data.camvid.CamVid`, every label pixel void (255), so the semantic terms ignore these
images and the other terms (contrastive, preservation, colour, smoothness) see them as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sclle.core.files import natural_sorted
from sclle.core.sampling import evenly_spaced
from sclle.data.camvid import read_rgb_uint8
from sclle.data.sice import HELD_OUT_MARKER, held_out_files, is_sice_folder
from sclle.errors import SclleError
from sclle.imageio import SUPPORTED_EXTENSIONS

VOID = 255


class UnlabelledPhotos:
    """The images of ``root`` (not recursive, natural order), each with an all-void label.

    Args:
        root: folder of images (any format :mod:`sclle.imageio` reads).
        max_images: keep only the first N (evenly spaced) images; None: all.
    """

    def __init__(self, root: str | Path, *, max_images: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SclleError(f"{self.root}: extra training photos folder not found")
        # The SICE frames of the held-out scenes are evaluation data (sclle.data.sice): never trained on.
        held = (
            held_out_files() if is_sice_folder(self.root) or (self.root / HELD_OUT_MARKER).exists() else set()
        )
        files = natural_sorted(
            (
                p
                for p in self.root.iterdir()
                if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS and p.name not in held
            ),
            key=lambda p: p.name,
        )
        files = [files[i] for i in evenly_spaced(len(files), max_images)]
        if not files:
            raise SclleError(f"{self.root}: no images ({', '.join(SUPPORTED_EXTENSIONS)})")
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def get_uint8(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(3, H, W) uint8 image and an (H, W) uint8 label that is void everywhere."""
        img = torch.from_numpy(read_rgb_uint8(self.files[index]).copy()).permute(2, 0, 1).contiguous()
        return img, torch.full(img.shape[-2:], VOID, dtype=torch.uint8)
