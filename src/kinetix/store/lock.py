"""One kinetix process per dataset root: an advisory lock file under ``.kinetix/``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from kinetix.errors import LockedError
from kinetix.store.layout import state_dir


class RootLock:
    """Exclusive, non-blocking lock on ``ROOT/.kinetix/lock``; released when the process dies."""

    def __init__(self, root: str | Path):
        self.path = state_dir(root) / "lock"
        self._fd: int | None = None

    def acquire(self) -> RootLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"{self.path.parent.parent} is in use by another kinetix process (pid {holder}); "
                "wait for it to finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RootLock:
        return self.acquire()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
