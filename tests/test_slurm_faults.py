"""Faults on real SLURM jobs (the one-node cluster ``.ci/slurm-up`` brings up): a worker SIGKILLed
mid-task, a job pre-empted (cancelled) while it holds tasks, and the parent SIGKILLed mid-run then
rerun. The job finishes, the output equals a clean local run's, nothing half-written is visible
or recorded, no job is left behind and the root is not left locked.

1-core, 1 GB jobs on 127.0.0.1, like tests/test_slurm.py; skipped (with the reason) without SLURM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from _cluster import TEST_SHAPE
from _faults import (
    SHARD_BPS,
    check_like_clean,
    download_argv,
    ffmpeg_writing_under,
    frames_argv,
    jpg_written,
    part_has_bytes,
)
from _procs import Killer, opens_under, processes, wait_until

from kinetix.cli.main import main
from kinetix.store.layout import partial_dir
from kinetix.store.lock import RootLock
from kinetix.synthetic.server import MirrorServer

pytest_plugins = ["_faults"]  # videos, clean_frames, clean_download

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.usefixtures("slurm_cluster"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc"),
]


@pytest.fixture
def comment() -> str:
    """Marks this test's jobs, to tell them from other runs' on the node."""
    return f"kinetix-fault-{uuid.uuid4().hex[:12]}"


def slurm_flags(comment: str) -> list[str]:
    return ["--scheduler-host", "127.0.0.1", "--slurm-wait", "120", *TEST_SHAPE,
            f"--slurm-extra=--comment={comment}"]  # fmt: skip


def with_slurm(argv: list[str], comment: str) -> list[str]:
    i = argv.index("--executor")
    return [*argv[: i + 1], "slurm", *argv[i + 2 :], *slurm_flags(comment)]


def jobs(comment: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("|")[0] for line in out.splitlines() if line.endswith("|" + comment)]


def job_of(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"SLURM_JOB_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


def assert_no_job_left(comment: str, seconds: float = 30) -> None:
    assert wait_until(lambda: not jobs(comment), seconds), f"jobs left: {jobs(comment)}"


def test_a_slurm_worker_killed_mid_task_is_restarted_and_the_task_rerun(
    videos, clean_frames, tmp_path, comment
) -> None:
    out = tmp_path / "frames"
    seen: dict[str, int] = {}
    with Killer(ffmpeg_writing_under(out, seen), seconds=120) as killer:
        assert main(with_slurm(frames_argv(videos, out, "slurm"), comment)) == 0
    assert killer.killed is not None, "no worker was seen mid-task; nothing was tested"
    check_like_clean(out, clean_frames)
    assert_no_job_left(comment)


def test_a_preempted_job_hands_its_tasks_to_the_other(
    mirror, clean_download, tmp_path, comment
) -> None:
    root = tmp_path / "root"
    folder = partial_dir(root)

    def job_mid_shard() -> str | None:
        if not part_has_bytes(folder):
            return None
        mine = jobs(comment)
        for p in processes():
            job = job_of(p.pid)
            if job in mine and opens_under(p.pid, folder):
                return job
        return None

    def preempt(job: str) -> None:
        # as a pre-emption or a node failure does: the job and everything in it go at once
        subprocess.run(["scancel", "--signal=KILL", "--full", job], check=True)

    with (
        MirrorServer(mirror.root, per_connection_bps=SHARD_BPS) as server,
        Killer(job_mid_shard, act=preempt, seconds=120) as killer,
    ):
        assert main(with_slurm(download_argv(root, server, "slurm"), comment)) == 0
    assert killer.killed is not None, "no job was seen mid-shard; nothing was tested"
    check_like_clean(root, clean_download)
    assert_no_job_left(comment)


@pytest.mark.parametrize("stage", ["frames", "download"])
def test_the_parent_killed_mid_slurm_run_leaves_no_job_and_a_rerun_finishes(
    stage, videos, clean_frames, mirror, clean_download, tmp_path, comment
) -> None:
    root = tmp_path / stage
    with MirrorServer(mirror.root, per_connection_bps=SHARD_BPS) as server:
        if stage == "frames":
            argv, clean, mid_task = frames_argv(videos, root, "slurm"), clean_frames, jpg_written
        else:
            argv, clean, mid_task = (
                download_argv(root, server, "slurm"),
                clean_download,
                part_has_bytes,
            )
        argv = with_slurm(argv, comment)
        cli = [sys.executable, "-m", "kinetix.cli.main", *argv]
        parent = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            folder = partial_dir(root)
            assert wait_until(lambda: mid_task(folder) or parent.poll() is not None, 120)
            assert parent.poll() is None, "the run ended before a task was seen mid-way"
            assert jobs(comment), "the workers run as SLURM jobs"
            parent.send_signal(signal.SIGKILL)
            parent.wait()
        finally:
            parent.kill()
            parent.wait()
        # The scheduler lived in the parent: its workers see it gone and their jobs end.
        started = time.monotonic()
        assert_no_job_left(comment, 60)
        print(f"jobs ended {time.monotonic() - started:.1f} s after the parent was killed")
        RootLock(root).acquire().release()
        rerun = subprocess.run(cli, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    check_like_clean(root, clean)
    assert_no_job_left(comment)
