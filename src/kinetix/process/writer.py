"""Batched manifest writes for the one process that owns a run's manifest."""

from __future__ import annotations

import time
from types import TracebackType

from kinetix.store.manifest import ClipUpdate, Manifest


class ManifestWriter:
    """Buffers worker results and applies them in one transaction per batch.

    One transaction per clip would cost an fsync each (hundreds per second at verify
    speed); a batch every ``size`` updates or ``every`` seconds keeps the manifest at most
    a few seconds behind, and ``flush`` on exit (even on Ctrl-C) loses nothing finished.
    """

    def __init__(self, manifest: Manifest, *, size: int = 256, every: float = 2.0):
        self.manifest = manifest
        self.size = size
        self.every = every
        self.written = 0
        self._pending: list[ClipUpdate] = []
        self._last = time.monotonic()

    def add(self, update: ClipUpdate) -> None:
        self._pending.append(update)
        if len(self._pending) >= self.size or time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.written += self.manifest.apply(self._pending)
            self._pending = []
        self._last = time.monotonic()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()
