"""One kinetix process per dataset root: an advisory lock file under ``.kinetix/``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from kinetix.errors import ConfigError, LockedError
from kinetix.store.layout import state_dir

# Descriptors of the locks this process holds. A forked child (a pool worker) shares the lock
# through them, so an orphaned worker would keep the root locked after its parent died; every
# fork closes its copies at once (closing, not unlocking: the parent's lock stays).
_HELD: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1][:4]
    except OSError:
        return True


def lock_holders(path: Path) -> list[int]:
    """Processes with ``path`` open (Linux ``/proc``; empty where that is unavailable)."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    holders = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    st = os.stat(fd)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                    holders.append(int(entry.name))
                    break
        except OSError:
            continue
    return sorted(pid for pid in holders if pid != os.getpid())


class RootLock:
    """Exclusive, non-blocking lock on ``ROOT/.kinetix/lock``; released when the process dies.

    The file records the holder's pid. Forked children never keep the lock (see ``_HELD``); if a
    root is still locked while the recorded holder is dead, the processes keeping it are named.
    """

    def __init__(self, root: str | Path):
        self.path = state_dir(root) / "lock"
        self._fd: int | None = None

    def acquire(self) -> RootLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # a read-only mount, or someone else's root
            raise ConfigError(
                f"cannot write to {self.path.parent.parent}: {exc.strerror or exc} "
                f"({self.path}); this command records its work in the root's manifest, so it "
                "needs a writable root (copy it somewhere writable, or fix the permissions)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(self._locked_message(holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        _HELD.add(fd)
        return self

    def _locked_message(self, holder: str) -> str:
        root = self.path.parent.parent
        if holder.isdigit() and not _alive(int(holder)):
            others = lock_holders(self.path)
            which = f"process(es) {', '.join(map(str, others))}" if others else "another process"
            stop = f"stop them (kill {' '.join(map(str, others))})" if others else "stop it"
            return (
                f"{root} is still locked by {which} left over from kinetix pid {holder}, which "
                f"is no longer running; {stop}, then rerun"
            )
        return (
            f"{root} is in use by another kinetix process (pid {holder}); "
            "wait for it to finish or stop it, then rerun"
        )

    def release(self) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RootLock:
        return self.acquire()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
