"""After ``kill -9`` of kinetix, its pool workers die too and never keep the root locked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _procs import processes

from kinetix.errors import LockedError
from kinetix.store.lock import RootLock

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

# A kinetix-like parent: holds the root lock, runs CPU tasks on the local process pool (forked
# workers), prints the workers' pids, then waits to be killed.
PARENT = textwrap.dedent(
    """
    import sys, time
    from kinetix.executors import LocalExecutor, TaskKind
    from kinetix.store.lock import RootLock

    lock = RootLock(sys.argv[1]).acquire()
    executor = LocalExecutor(2)
    results = executor.map_unordered(time.sleep, [3600] * 4, kind=TaskKind.CPU)
    pool = executor._pool(TaskKind.CPU)
    pool.submit(time.sleep, 0).result()  # the workers are up
    print(" ".join(map(str, pool._processes)), flush=True)
    next(results)
    """
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_pool_workers_die_with_a_killed_parent_and_release_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        with pytest.raises(LockedError, match=f"pid {proc.pid}"):
            RootLock(root).acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Before: the workers slept on (time.sleep(3600)) holding the inherited flock, and every
        # rerun said the root was in use by the dead pid.
        assert wait_until(lambda: not any(alive(pid) for pid in workers), 10.0)
        RootLock(root).acquire().release()
    finally:
        proc.kill()
        proc.wait()
        for pid in workers if "workers" in locals() else ():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_root_kept_locked_after_its_holder_died_names_the_processes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / ".kinetix").mkdir(parents=True)
    # A stray process keeping the lock's descriptor (an older kinetix's worker, a debugger...)
    # while the pid recorded in the file is gone.
    keeper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'999999999')\n"
            "print('ok', flush=True)\n"
            "time.sleep(3600)\n",
            str(root / ".kinetix" / "lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert keeper.stdout is not None and keeper.stdout.readline().strip() == "ok"
        with pytest.raises(LockedError) as caught:
            RootLock(root).acquire()
        message = str(caught.value)
        assert "999999999, which is no longer running" in message
        assert f"kill {keeper.pid}" in message
    finally:
        keeper.kill()
        keeper.wait()


def test_a_killed_youtube_run_leaves_no_ffmpeg_behind(tmp_path: Path, mirror) -> None:
    # yt-dlp starts its own ffmpeg to fetch a clip's section; after kill -9 of kinetix those
    # fetched on until their section ended (and the trims' ffmpeg likewise, before they died
    # with their worker). Now each is in a group of its own and dies with what started it.
    from _faults import Run

    from kinetix.synthetic.server import MirrorServer

    with MirrorServer(mirror.root, total_bps=60_000) as server:  # sections take seconds
        argv = ["download", "k700", "--split", "val", "--root", str(tmp_path / "root"),
                "--mirror", server.url, "--source", "youtube", "--rate", "50",
                "--youtube-url-template", server.url + "youtube/{youtube_id}.mp4",
                "--no-progress"]  # fmt: skip
        run = Run(argv, KINETIX_CACHE=str(tmp_path / "cache"))
        try:

            def fetching() -> list[int]:
                return [
                    p.pid
                    for p in processes()
                    if p.pid in run.family() and "ffmpeg" in p.cmdline and "youtube/" in p.cmdline
                ]

            def groups() -> dict[int, int]:  # live fetching ffmpeg -> its process group
                seen = {}
                for pid in fetching():
                    with contextlib.suppress(ProcessLookupError):  # its section just ended
                        seen[pid] = os.getpgid(pid)
                return seen

            tools: dict[int, int] = {}
            assert wait_until(
                lambda: tools.update(groups()) or tools or run.proc.poll() is not None, 120
            )
            assert tools, "no ffmpeg was seen fetching a section; nothing was tested"
            assert all(group == pid for pid, group in tools.items()), (
                "ffmpeg shares kinetix's group"
            )
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()
            run.assert_no_orphans(10)
        finally:
            run.kill_all()
