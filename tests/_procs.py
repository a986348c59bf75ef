"""Find and kill processes by what they do, read from /proc (Linux only): fault-test helpers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cmdline: str


def processes() -> Iterator[Proc]:
    """Every live (not zombie) process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            yield Proc(int(entry), int(fields[1]), cmdline)


def alive(pid: int) -> bool:
    return any(p.pid == pid for p in processes())


def descendants(pid: int) -> list[int]:
    """Children, grandchildren... of ``pid``, now."""
    procs = list(processes())
    found: list[int] = []
    parents = {pid}
    while True:
        kids = [p.pid for p in procs if p.ppid in parents and p.pid not in found]
        if not kids:
            return found
        found += kids
        parents = set(kids)


def opens_under(pid: int, folder: Path) -> bool:
    """Whether ``pid`` has a file under ``folder`` open (a worker writing its ``.part``)."""
    prefix = str(folder) + os.sep
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                return True
        except OSError:
            continue
    return False


def wait_until(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def kill9(pid: Any) -> None:
    os.kill(pid, signal.SIGKILL)


class Killer:
    """A thread that polls ``find`` and, the first time it names something (a pid), hands it to
    ``act`` (SIGKILL by default), once; ``killed`` records what it was."""

    def __init__(
        self,
        find: Callable[[], Any],
        *,
        act: Callable[[Any], None] = kill9,
        seconds: float = 60.0,
    ):
        self.find = find
        self.act = act
        self.seconds = seconds
        self.killed: Any = None
        self._thread = threading.Thread(target=self._run, name="test-killer", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            target = self.find()
            if target is not None:
                try:
                    self.act(target)
                except ProcessLookupError:
                    continue
                self.killed = target
                return
            time.sleep(0.01)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=self.seconds)
