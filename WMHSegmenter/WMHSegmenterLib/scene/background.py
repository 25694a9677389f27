"""Running the network off the GUI thread: a worker thread the panel polls with a timer.

MRML must only be touched on the main thread, so the work done here is pure computation (the
predictor); the panel reads :attr:`BackgroundRun.stage` and :attr:`BackgroundRun.fraction` on its
timer and, once :attr:`done`, takes :meth:`result` back to the main thread to write the outputs.
Torch releases the GIL in its kernels, so Slicer stays responsive while tiles are computed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Work = Callable[[Callable[[str, float], None], Callable[[], bool]], Any]


class BackgroundRun:
    """One call of ``work(progress, should_stop)`` in a daemon thread."""

    def __init__(self, work: Work):
        self._work = work
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="WMHSegmenter", daemon=True)
        self._value: Any = None
        self._error: BaseException | None = None
        self.stage = "starting"
        self.fraction = 0.0

    def start(self) -> BackgroundRun:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next check (the predictor checks before every tile batch)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def result(self) -> Any:
        """The work's return value; re-raises its exception (Cancelled when it was cancelled)."""
        if not self.done:
            raise RuntimeError("the background run has not finished")
        if self._error is not None:
            raise self._error
        return self._value

    def _progress(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, fraction

    def _run(self) -> None:
        try:
            self._value = self._work(self._progress, self._cancel.is_set)
        except BaseException as error:  # handed to the main thread by result()
            self._error = error
        finally:
            self._finished.set()
