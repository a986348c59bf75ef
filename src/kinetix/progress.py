"""Progress of a long run: tqdm bars on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


class Progress:
    """Thread-safe counters of bytes, clips and tasks, shown as bars or periodic lines.

    ``emit`` receives the plain lines (the CLI passes a stderr writer); the library never
    prints. ``bars=None`` chooses bars when stderr is a terminal.
    """

    def __init__(
        self,
        what: str,
        *,
        total_bytes: int | None = None,
        total_clips: int | None = None,
        total_tasks: int | None = None,
        bars: bool | None = None,
        emit: Callable[[str], None] | None = None,
        every: float = 10.0,
    ):
        self.what = what
        self.total_bytes, self.total_clips, self.total_tasks = total_bytes, total_clips, total_tasks
        self.bytes = self.clips = self.tasks = self.failed = 0
        # clips settled without a result of their own (no shard holds them), and what they are
        self.settled, self._settled_as = 0, ""
        self._lock = threading.Lock()
        self._emit = emit
        self._every = every
        self._start = self._last = time.monotonic()
        self._bars: dict[str, Any] = {}
        if bars is None:
            bars = emit is not None and sys.stderr.isatty()
        if bars:
            from tqdm import tqdm

            position = 0
            if total_bytes is not None:  # bytes, rate and ETA
                self._bars["bytes"] = tqdm(
                    total=total_bytes, unit="B", unit_scale=True, desc="bytes", position=position
                )
                position += 1
            if total_tasks is not None:
                self._bars["tasks"] = tqdm(
                    total=total_tasks, unit="shard", desc=what, position=position
                )
                position += 1
            self._bars["clips"] = tqdm(
                total=total_clips, unit="clip", desc="clips", position=position
            )

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            if "bytes" in self._bars:
                self._bars["bytes"].update(n)
            self._maybe_line()

    def add_clips(self, n: int = 1, *, failed: int = 0) -> None:
        with self._lock:
            self.clips += n
            self.failed += failed
            if "clips" in self._bars:
                self._bars["clips"].update(n + failed)
            self._maybe_line()

    def settle(self, n: int, why: str) -> None:
        """``n`` clips are done with, though no task reported them (``why``: "not in any
        shard"): the clips bar reaches its total, and the last line says so."""
        if n <= 0:
            return
        with self._lock:
            self.settled += n
            self._settled_as = why
            if "clips" in self._bars:
                self._bars["clips"].update(n)
            self._maybe_line(force=True)

    def task_done(self) -> None:
        with self._lock:
            self.tasks += 1
            if "tasks" in self._bars:
                self._bars["tasks"].update(1)
            self._maybe_line(force=self.total_tasks is not None and self.tasks == self.total_tasks)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        parts = [self.what]
        if self.total_tasks:
            parts.append(f"tasks {self.tasks}/{self.total_tasks}")
        parts.append(f"clips {self.clips}" + (f"/{self.total_clips}" if self.total_clips else ""))
        if self.failed:
            parts.append(f"failed {self.failed}")
        if self.settled:
            parts.append(f"{self._settled_as} {self.settled}")
        if self.bytes:
            parts.append(f"{_size(self.bytes)} at {_size(self.bytes / elapsed)}/s")
        return ", ".join(parts)

    def _maybe_line(self, force: bool = False) -> None:
        if self._bars or self._emit is None:
            return
        now = time.monotonic()
        if force or now - self._last >= self._every:
            self._last = now
            self._emit(self.line())

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
