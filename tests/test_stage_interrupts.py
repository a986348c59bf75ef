"""Ctrl-C and SIGTERM during ``verify``, ``process`` and ``frames``: the run stops, says one line,
leaves no worker or ffmpeg running, nothing half-written at a final path or recorded, the root
unlocked; the plain rerun then ends with what an uninterrupted run makes.

Ctrl-C is sent as a terminal sends it, to the whole process group (ffmpeg included, before it
had a group of its own); SIGTERM to kinetix alone, as ``kill`` or a batch system sends it. The
signal goes in once a task is seen mid-way (ffmpeg writing, a clip open in a worker), never
after a guessed sleep; stopping is bounded generously (a hang fails), never timed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _faults import (
    LONGER,
    Clean,
    Run,
    assert_unlocked,
    check_like_clean,
    frames_argv,
    jpg_written,
    recorded,
    rerun,
    tree,
)
from _procs import opens_under, wait_until
from _roots import RootClip, build_videos_root, clips

from kinetix.cli.main import main
from kinetix.store.layout import partial_dir

pytest_plugins = ["_faults"]  # videos, clean_frames

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

ONE_LINE = ["kinetix: interrupted; rerun the same command to resume"]


def process_argv(videos: Path, out: Path, executor: str) -> list[str]:
    return ["process", str(videos), "--out", str(out), "--executor", executor, "--workers", "2",
            "--short-side", "96", "--no-progress"]  # fmt: skip


def verify_argv(root: Path, executor: str) -> list[str]:
    return ["verify", str(root), "--deep", "--executor", executor, "--workers", "2",
            "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def unverified(tmp_path_factory) -> Path:
    """Sixteen 6 s clips never verified: deep checks keep both workers busy for a while."""
    root = tmp_path_factory.mktemp("unverified") / "root"
    labels = ["abseiling", "archery", "bowling", "juggling balls"] * 4
    return build_videos_root(root, [RootClip(c, verify=None) for c in clips("val", labels)], LONGER)


@pytest.fixture(scope="module")
def clean_verify(unverified, tmp_path_factory) -> Clean:
    root = tmp_path_factory.mktemp("clean-verify") / "root"
    shutil.copytree(unverified, root)
    assert main(verify_argv(root, "local")) == 0
    return tree(root), recorded(root)


@pytest.fixture(scope="module")
def clean_process(videos, tmp_path_factory) -> Clean:
    out = tmp_path_factory.mktemp("clean-process") / "out"
    assert main(process_argv(videos, out, "local")) == 0
    return tree(out), recorded(out)


def temp_clip_written(folder: Path) -> bool:
    try:
        return any(p.stat().st_size for p in folder.glob("*.mp4"))
    except OSError:  # renamed into place while we looked
        return False


def send(run: Run, signum: int) -> None:
    if signum == signal.SIGINT:
        os.killpg(run.proc.pid, signal.SIGINT)  # Ctrl-C: the terminal's whole foreground group
    else:
        run.proc.send_signal(signum)


def stop_mid_task(run: Run, mid_task: Callable[[], bool], signum: int, executor: str) -> None:
    """Signal ``run`` once a task is seen mid-way; it must stop (30 s: a hang, not a speed),
    exit 128 + the signal, say one line and leave nothing running."""
    assert wait_until(lambda: mid_task() or not run.running(), 120)
    assert run.running(), "the run ended before a task was seen mid-way; nothing was tested"
    send(run, signum)
    code, err = run.wait(timeout=30)
    assert code == 128 + signum, err
    said(err, executor)
    run.assert_no_orphans()


def said(err: str, executor: str) -> None:
    """kinetix says one line. A Dask cluster it started logs its own shutdown too (INFO lines,
    a port warning, a closed-comm traceback of its scheduler), which is dask's: kinetix's one
    line is then the only one of its own."""
    lines = err.strip().splitlines()
    if executor == "dask":
        lines = [line for line in lines if line.startswith("kinetix")]
    assert lines == ONE_LINE, err


def nothing_half_written(out: Path, clean: Clean, *, folders_are_clips: bool) -> None:
    """What is at a final path is whole (as the clean run made it); what is recorded is too."""
    files, rows = clean
    now = tree(out)
    assert all(files.get(path) == digest for path, digest in now.items())
    folders = {path.rsplit("/", 1)[0] for path in now} if folders_are_clips else set()
    for folder in folders:  # a frame folder is all there or not there at all
        whole = {p for p in files if p.startswith(folder + "/")}
        assert whole <= set(now), f"{folder} is half-written"
    for key, row in recorded(out).items():
        assert row[0] != "present" or row == rows[key], key


STAGES = {
    "frames": (frames_argv, lambda out: jpg_written(partial_dir(out))),
    "process": (process_argv, lambda out: temp_clip_written(partial_dir(out))),
}


@pytest.mark.parametrize(
    "stage, signum, executor",
    [
        ("frames", signal.SIGINT, "local"),
        ("frames", signal.SIGTERM, "local"),
        ("frames", signal.SIGTERM, "dask"),
        ("process", signal.SIGINT, "local"),
        ("process", signal.SIGTERM, "local"),
    ],
)
def test_a_signal_stops_a_derived_stage_cleanly_and_a_rerun_finishes(
    stage, signum, executor, videos, request, tmp_path
) -> None:
    clean = request.getfixturevalue(f"clean_{stage}")
    make_argv, mid_task = STAGES[stage]
    out = tmp_path / "out"
    argv = make_argv(videos, out, executor)
    stop_mid_task(Run(argv), lambda: mid_task(out), signum, executor)
    assert_unlocked(out)
    nothing_half_written(out, clean, folders_are_clips=stage == "frames")
    rerun(argv)
    check_like_clean(out, clean)


@pytest.mark.parametrize(
    "signum, executor",
    [(signal.SIGINT, "local"), (signal.SIGTERM, "local"), (signal.SIGTERM, "dask")],
)
def test_a_signal_stops_verify_cleanly_and_a_rerun_finishes(
    signum, executor, unverified, clean_verify, tmp_path
) -> None:
    root = tmp_path / "root"
    shutil.copytree(unverified, root)
    argv = verify_argv(root, executor)
    run = Run(argv)
    clip_dir = root / "val"

    def checking() -> bool:  # a worker (not kinetix itself) has a clip open
        return any(opens_under(pid, clip_dir) for pid in run.family() if pid != run.proc.pid)

    stop_mid_task(run, checking, signum, executor)
    assert_unlocked(root)
    assert tree(root) == clean_verify[0]  # verify moves nothing of good clips
    rerun(argv)
    check_like_clean(root, clean_verify)
