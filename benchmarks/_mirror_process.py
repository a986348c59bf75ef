"""A ``MirrorServer`` in its own process, so a benchmark's clients never share the server's GIL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType

import psutil

_SERVER = """
import sys
from pathlib import Path
from kinetix.synthetic.server import MirrorServer
per, total = (float(v) if v != "none" else None for v in sys.argv[2:4])
with MirrorServer(Path(sys.argv[1]), per_connection_bps=per, total_bps=total) as server:
    print(server.port, flush=True)
    sys.stdin.read()  # serve until the benchmark closes our stdin
"""


class MirrorProcess:
    """Serve ``root`` from a child interpreter with the given caps (bytes/s; None: uncapped).

    ``url`` is the base URL (with a trailing slash); ``cpu_seconds()`` the server's user+sys
    time so far, to see how much of a 2-core machine serving took.
    """

    def __init__(
        self,
        root: Path,
        *,
        per_connection_bps: float | None = None,
        total_bps: float | None = None,
    ):
        self.root = Path(root)
        self.per_connection_bps = per_connection_bps
        self.total_bps = total_bps
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> MirrorProcess:
        caps = ["none" if v is None else str(v) for v in (self.per_connection_bps, self.total_bps)]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(self.root), *caps],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        port = self._proc.stdout.readline().strip()
        if not port.isdigit():
            self.stop()
            raise RuntimeError(f"the mirror server for {self.root} did not start")
        self.url = f"http://127.0.0.1:{port}/"
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> MirrorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
