"""Image files and arrays in, image files and arrays out.

Everything inside ``sclle`` works on float32 RGB in [0, 1]; this package is the only place that converts
from and back to what the user gave, so that an enhanced image comes back in the same *layout* as its
source (gray, alpha, 16 bits, EXIF/ICC). Its modules, one job each:

* :mod:`~sclle.imageio.formats` - the supported formats and what each can hold,
* :mod:`~sclle.imageio.read` - decoding files (EXIF orientation, 16 bits via OpenCV, size limits),
* :mod:`~sclle.imageio.convert` - arrays / Pillow images / tensors and the :class:`Image` record,
* :mod:`~sclle.imageio.write` - encoding, metadata, atomic writes, output paths,
* :mod:`~sclle.imageio.discover` - files, folders and globs from a command line,
* :mod:`~sclle.imageio.sheet` - the ``--compare`` side-by-side sheet.
"""

from __future__ import annotations

from sclle.imageio.convert import Image, from_array, from_pil, from_tensor, to_array, to_pil, to_tensor
from sclle.imageio.discover import find_images
from sclle.imageio.formats import SUPPORTED_EXTENSIONS, ConversionWarning, is_supported
from sclle.imageio.read import DEFAULT_MAX_PIXELS, declared_size, read_image
from sclle.imageio.sheet import side_by_side
from sclle.imageio.write import OutputExistsError, conversion_notes, output_path, write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "ConversionWarning",
    "Image",
    "OutputExistsError",
    "conversion_notes",
    "declared_size",
    "find_images",
    "from_array",
    "from_pil",
    "from_tensor",
    "is_supported",
    "output_path",
    "read_image",
    "side_by_side",
    "to_array",
    "to_pil",
    "to_tensor",
    "write_image",
]
