"""sclle: low-light image enhancement with Semantically Contrastive Learning (SCL-LLE).

Public API (usable from a notebook exactly as the CLI uses it)::

    import sclle
    out = sclle.enhance("dark.jpg")               # -> PIL image
    net = sclle.load_model("scl-lle-official")    # -> DCENet, weights hash-checked
    sclle.list_models()
"""

from __future__ import annotations

__version__ = "0.1.0"

from sclle.enhancement.api import enhance, load_model  # noqa: E402
from sclle.models.registry import list_models  # noqa: E402

__all__ = ["__version__", "enhance", "load_model", "list_models"]
