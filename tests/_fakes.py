"""Stand-ins the tests share."""

from __future__ import annotations

import threading


class SleepRecorder:
    """Stands in for ``retry.sleep``: records each wait, optionally blocks until released."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, seconds: float, cancel: threading.Event | None = None) -> None:
        self.calls.append(seconds)
        self.entered.set()
        if self.gate is not None:
            while not self.gate.is_set() and not (cancel is not None and cancel.is_set()):
                self.gate.wait(0.01)
