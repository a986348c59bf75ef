"""``--executor slurm`` on a real SLURM cluster (the one-node cluster ``.ci/slurm-up`` brings up):
a download and a frames job match a local run byte for byte, and a job shape that can never run
stops the run within a minute with one line naming the flag.

Every run here asks for 1-core, 1 GB jobs with the scheduler and workers on 127.0.0.1, so they fit
the 2-core CI node beside another lane's jobs. Skipped (with the reason) where SLURM is not up.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from _cluster import TEST_SHAPE
from _roots import RootClip, build_videos_root, clips

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.executors import slurm as slurm_mod
from kinetix.store.layout import manifest_path, slurm_logs
from kinetix.store.manifest import Manifest

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SLURM = ["--executor", "slurm", "--scheduler-host", "127.0.0.1", "--slurm-wait", "120"]
# Columns that hold when or where a run happened, not what it produced.
VOLATILE = {"mtime", "verified_at", "created_at", "updated_at", "origin"}


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file outside ``.kinetix``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".kinetix" not in p.parts and p.name != CARD_NAME
    }


def _rows(root: Path) -> dict[str, Any]:
    """Every clip and shard row of ROOT's manifest, minus timestamps, with ROOT written as ROOT."""

    def clean(row: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v.replace(str(root), "ROOT") if isinstance(v, str) else v
            for k, v in row.items()
            if k not in VOLATILE
        }

    with Manifest(manifest_path(root), readonly=True) as m:
        return {
            "clips": sorted((clean(r.as_dict()) for r in m.clips()), key=lambda r: r["key"]),
            "shards": [clean(s) for s in m.shards()],
        }


def _slurm_job_logs(root: Path) -> list[Path]:
    """The worker jobs' stderr files: proof the tasks ran in SLURM jobs, not in this process."""
    return sorted(slurm_logs(root).glob("*.err"))


@pytest.fixture
def tag() -> list[str]:
    """A comment on this test's jobs, so they can be told apart from other runs' on the node."""
    return [f"--slurm-extra=--comment=kinetix-test-{uuid.uuid4().hex[:12]}"]


def _jobs(tag: list[str]) -> list[str]:
    comment = tag[0].rsplit("=", 1)[1]
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%T|%R|%k"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line.endswith("|" + comment)]


def _no_job_left(tag: list[str]) -> None:
    """This test's jobs are cancelled when its run ends."""
    deadline = time.monotonic() + 30
    while (left := _jobs(tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"SLURM jobs left behind after the run: {left}"


def test_a_slurm_download_matches_a_local_one(tmp_path, mirror_server, tag) -> None:
    runs = {}
    for name, executor in (("local", ["--executor", "local"]), ("slurm", SLURM + TEST_SHAPE + tag)):
        root = tmp_path / name
        argv = [
            "download", "k600", "--split", "val", "--root", str(root), "--mirror",
            mirror_server.url, *executor, "--workers", "2", "--no-progress",
        ]  # fmt: skip
        assert main(argv) == 0
        runs[name] = {"files": _tree(root), "manifest": _rows(root)}
        assert main(argv) == 0  # a rerun does no new work (and on SLURM submits no job)
        assert _tree(root) == runs[name]["files"]
    local, slurm = runs["local"], runs["slurm"]
    assert local["files"] and any(r["state"] == "present" for r in local["manifest"]["clips"])
    assert slurm["files"] == local["files"]
    assert slurm["manifest"] == local["manifest"]
    # Two worker jobs are asked for; on a busy node the work can end before the second starts,
    # and a job cancelled while pending writes no log. At least one ran the tasks, none extra.
    assert 1 <= len(_slurm_job_logs(tmp_path / "slurm")) <= 2, "SLURM jobs ran the workers"
    _no_job_left(tag)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Six verified clips in two classes."""
    root = tmp_path_factory.mktemp("videos")
    return build_videos_root(
        root, [RootClip(c) for c in clips("val", ["abseiling", "archery"] * 3)]
    )


def test_slurm_frames_match_a_local_run(videos, tmp_path, tag) -> None:
    runs = {}
    for name, executor in (("local", ["--executor", "local"]), ("slurm", SLURM + TEST_SHAPE + tag)):
        out = tmp_path / name
        argv = ["frames", str(videos), "--out", str(out), *executor, "--workers", "2"]
        assert main([*argv, "--no-progress"]) == 0
        runs[name] = {"files": _tree(out), "manifest": _rows(out)}
        if name == "slurm":
            assert 1 <= len(_slurm_job_logs(out)) <= 2, "SLURM jobs ran the workers"
            # a rerun does no new work and needs no cluster: the manifest says it is all done
            assert main([*argv, "--no-progress"]) == 0
            assert _tree(out) == runs[name]["files"]
            assert len(_slurm_job_logs(out)) == 2, "the rerun submitted no job"
    local, slurm = runs["local"], runs["slurm"]
    assert sum(f.endswith(".jpg") for f in local["files"]) == 6 * 50  # 2 s at 25 fps each
    assert slurm["files"] == local["files"]
    assert slurm["manifest"] == local["manifest"]
    _no_job_left(tag)


def _frames_argv(videos: Path, out: Path, *shape: str) -> list[str]:
    return ["frames", str(videos), "--out", str(out), *SLURM, "--no-progress", *shape]


def test_more_cores_than_any_node_stops_before_submitting(videos, tmp_path, capsys) -> None:
    cpus = max(p.cpus for p in slurm_mod.read_partitions())
    started = time.monotonic()
    code = main(_frames_argv(videos, tmp_path / "f", "--slurm-cores", str(cpus + 2)))
    took = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert code != 0 and took < 60
    assert len(err.splitlines()) == 1, err
    assert f"--slurm-cores {cpus + 2}" in err and f"use --slurm-cores {cpus} or less" in err
    assert not (tmp_path / "f" / "img_00001.jpg").exists()


def test_a_job_pending_forever_stops_the_run_within_a_minute(
    videos, tmp_path, capsys, monkeypatch, tag
) -> None:
    """The shape check skipped (a cluster whose sinfo says less than its limits enforce): the real
    job pends as PartitionConfig, the watch sees it, names the flag and cancels the job."""
    monkeypatch.setattr(slurm_mod, "check_shape", lambda config, parts: parts[0])
    cpus = max(p.cpus for p in slurm_mod.read_partitions())
    started = time.monotonic()
    code = main(_frames_argv(videos, tmp_path / "f", "--slurm-cores", str(cpus + 2), *tag))
    took = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert code != 0 and took < 60, (code, took)
    assert len(err.splitlines()) == 1, err
    assert "pending (PartitionConfig)" in err and "change --slurm-cores" in err
    _no_job_left(tag)
