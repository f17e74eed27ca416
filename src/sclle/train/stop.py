"""Stop a run cleanly on Ctrl-C or ``kill``: finish the step, save a checkpoint, export, exit normally.

A long CPU run is interrupted by people and by schedulers (SIGTERM first, SIGKILL later). Without this,
everything since the last periodic checkpoint is lost. The first SIGINT/SIGTERM sets a flag that the loop
reads after each step (agreed over ranks, so DDP ranks stop at the same step); a second one is not
caught (Python's default: KeyboardInterrupt / termination), for when the clean stop itself hangs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager: ``requested`` turns True on the first SIGINT/SIGTERM while it is active.

    Handlers are installed only in the main thread (Python allows nothing else) and the previous ones
    are restored on exit, so a notebook or a caller's own handlers are left as they were.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        for s, h in self._previous.items():  # the next signal gets the usual behaviour
            signal.signal(s, h)  # type: ignore[arg-type]

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in _SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)  # type: ignore[arg-type]
        self._previous.clear()
