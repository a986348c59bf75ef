"""Faults on every executor: a worker SIGKILLed mid-task, a worker whose node disappears, the
parent SIGKILLed mid-run and rerun. Each time the job finishes (the task runs again elsewhere, or
on the rerun), the output equals a clean run's, nothing half-written is visible or recorded, no
process is left behind and the root is not left locked.

Stages: CVDF shard download and frames (the ones that write big outputs over a long time).
Dask clusters here bind to 127.0.0.1. The local executor's kill/soak suite for downloads is in
the reliability tests; these are about workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from _faults import (
    SHARD_BPS,
    assert_unlocked,
    check_like_clean,
    download_argv,
    ffmpeg_writing_under,
    frames_argv,
    jpg_written,
    my_workers,
    part_has_bytes,
    writing_a_part,
)
from _procs import Killer, alive, descendants, processes, wait_until

from kinetix.cli.main import main
from kinetix.errors import WorkerLostError
from kinetix.executors import LocalExecutor, run_tasks
from kinetix.process.ffmpeg import run_ffmpeg
from kinetix.store.layout import partial_dir
from kinetix.synthetic.server import MirrorServer

pytest_plugins = ["_faults"]  # videos, clean_frames, clean_download

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


# --- a worker killed mid-task -----------------------------------------------------------------

distributed = pytest.importorskip("distributed")


@pytest.fixture
def dask_cluster() -> Iterator[str]:
    """Two worker processes with nannies (a killed worker is restarted), on 127.0.0.1."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    try:
        yield "dask://" + cluster.scheduler_address.split("://", 1)[1]
    finally:
        cluster.close()


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_worker_killed_mid_frames_task_is_survived(
    executor, videos, clean_frames, tmp_path, request
) -> None:
    spec = request.getfixturevalue("dask_cluster") if executor == "dask" else "local"
    out = tmp_path / "frames"
    seen: dict[str, int] = {}
    with Killer(ffmpeg_writing_under(out, seen)) as killer:
        assert main(frames_argv(videos, out, spec)) == 0
    assert killer.killed is not None, "no worker was seen mid-task; nothing was tested"
    # Local: the pool broke and its tasks ran again on a new one; Dask: the scheduler moved
    # them to the other worker. Either way the killed worker's half-written folder is gone.
    check_like_clean(out, clean_frames)
    assert not alive(seen["ffmpeg"])


def test_a_worker_killed_mid_shard_is_survived(mirror, clean_download, tmp_path, dask_cluster):
    root = tmp_path / "root"
    with (
        MirrorServer(mirror.root, per_connection_bps=SHARD_BPS) as server,
        Killer(writing_a_part(root, my_workers)) as killer,
    ):
        assert main(download_argv(root, server, dask_cluster)) == 0
    assert killer.killed is not None, "no worker was seen mid-shard; nothing was tested"
    check_like_clean(root, clean_download)


def test_a_tool_dies_with_the_worker_that_ran_it(tmp_path) -> None:
    # kill -9 of a worker used to leave its ffmpeg writing on into the folder the task's retry
    # was rewriting: the retry could move that half-written folder into place.
    script = (
        "import sys\n"
        "from kinetix.process.ffmpeg import run_ffmpeg\n"
        "run_ffmpeg(['-re', '-f', 'lavfi', '-i', 'nullsrc=s=16x16:d=60', '-f', 'null', '-'])\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script])
    try:

        def tools() -> list[int]:
            return [p.pid for p in processes() if p.ppid == worker.pid and "nullsrc" in p.cmdline]

        assert wait_until(tools, 60)
        tool = tools()[0]
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_until(lambda: not alive(tool), 10), "ffmpeg outlived its worker"
    finally:
        worker.kill()
        worker.wait()
        for pid in tools() if "tool" in locals() else ():
            os.kill(pid, signal.SIGKILL)
    assert run_ffmpeg(["-f", "lavfi", "-i", "nullsrc=s=16x16:d=0.1", "-f", "null", "-"]) == ""


def kill_own_worker(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_a_task_that_keeps_killing_its_workers_stops_the_run_with_one_line() -> None:
    with LocalExecutor(workers=2) as ex:
        got: list[int] = []
        with pytest.raises(WorkerLostError) as err:
            run_tasks(range(6), kill_own_worker, ex, on_result=got.append)
    assert str(err.value) == (
        "a worker process died 3 times while running 3 (killed, or out of memory); not trying "
        "it again. Rerunning resumes the job"
    )
    assert set(got) <= {0, 1, 2, 4, 5}


# --- a worker whose node disappears ----------------------------------------------------------


@pytest.fixture
def bare_workers() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler and two worker processes without nannies: a killed one is gone for good,
    as when its node drops off the network (the scheduler sees its connection close)."""
    cluster = distributed.LocalCluster(
        n_workers=0, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    address = cluster.scheduler_address
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny",
            "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]  # fmt: skip
    workers = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        client = distributed.Client(address)
        client.wait_for_workers(2, timeout=60)
        client.close()
        yield "dask://" + address.split("://", 1)[1], workers
    finally:
        for w in workers:
            w.kill()
            w.wait()
        cluster.close()


@pytest.mark.parametrize("stage", ["frames", "download"])
def test_a_worker_whose_node_disappears_hands_its_tasks_on(
    stage, videos, clean_frames, mirror, clean_download, tmp_path, bare_workers
) -> None:
    spec, workers = bare_workers
    pids = [w.pid for w in workers]
    root = tmp_path / stage
    with MirrorServer(mirror.root, per_connection_bps=SHARD_BPS) as server:
        if stage == "frames":
            find, argv, clean = (
                ffmpeg_writing_under(root, {}), frames_argv(videos, root, spec), clean_frames,
            )  # fmt: skip
        else:
            find, argv, clean = (
                writing_a_part(root, lambda: pids), download_argv(root, server, spec),
                clean_download,
            )  # fmt: skip
        with Killer(find) as killer:
            assert main(argv) == 0
    assert killer.killed in pids, "no worker was seen mid-task; nothing was tested"
    assert sum(w.poll() is None for w in workers) == 1  # the run finished on the one left
    check_like_clean(root, clean)


def test_a_run_whose_every_worker_is_gone_stops_with_one_line_and_a_rerun_resumes(
    videos, clean_frames, tmp_path, bare_workers, monkeypatch, capsys
) -> None:
    from kinetix.executors.dask import DaskExecutor

    monkeypatch.setattr(DaskExecutor, "poll_seconds", 0.2)
    monkeypatch.setattr(DaskExecutor, "lost_after", 2.0)
    spec, workers = bare_workers
    out = tmp_path / "frames"
    folder = partial_dir(out)

    def kill_all(pids: list[int]) -> None:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    find = lambda: [w.pid for w in workers] if jpg_written(folder) else None  # noqa: E731
    with Killer(find, act=kill_all) as killer:
        assert main(frames_argv(videos, out, spec)) != 0
    assert killer.killed, "no worker was seen mid-task; nothing was tested"
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "kinetix: error: every worker has been gone for 2 s (killed, pre-empted, or their nodes "
        "lost) with "
    )
    assert err[-1].endswith("unfinished; what finished is recorded: rerun the command to resume")
    assert main(frames_argv(videos, out, "local")) == 0
    check_like_clean(out, clean_frames)


# --- the parent killed mid-run, then rerun -----------------------------------------------------


def _cli(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "kinetix.cli.main", *argv]


@pytest.mark.parametrize("stage", ["frames", "download"])
def test_the_parent_killed_mid_run_leaves_nothing_and_a_rerun_finishes(
    stage, videos, clean_frames, mirror, clean_download, tmp_path
) -> None:
    root = tmp_path / stage
    with MirrorServer(mirror.root, per_connection_bps=SHARD_BPS) as server:
        if stage == "frames":
            argv, clean, mid_task = frames_argv(videos, root, "dask"), clean_frames, jpg_written
        else:
            argv, clean = download_argv(root, server, "dask"), clean_download
            mid_task = part_has_bytes
        parent = subprocess.Popen(_cli(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            folder = partial_dir(root)
            assert wait_until(lambda: mid_task(folder) or parent.poll() is not None, 90)
            assert parent.poll() is None, "the run ended before a task was seen mid-way"
            family = descendants(parent.pid)
            assert family, "the Dask workers are the parent's children"
            parent.send_signal(signal.SIGKILL)
            parent.wait()
        finally:
            parent.kill()
            parent.wait()
        # The LocalCluster's workers notice their parent is gone and exit.
        assert wait_until(lambda: not any(alive(pid) for pid in family), 15), "workers outlived"
        assert_unlocked(root)
        rerun = subprocess.run(_cli(argv), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    check_like_clean(root, clean)
