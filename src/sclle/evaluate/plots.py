"""The one way evaluation draws a chart: matplotlib on the Agg backend, the figure rendered to PNG bytes.

Reports write files atomically, so a chart is bytes first (never ``savefig`` straight to a path), and
the headless Agg backend keeps plotting working on servers without a display.
"""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported lazily: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    """Render ``fig`` to PNG bytes and close it (open figures pile up in long evaluation runs)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        pyplot().close(fig)
    return buf.getvalue()
