"""kill -9 at each phase of each stage, exactly there (``KINETIX_CRASH_AT``), then a rerun.

Every case: the run dies by SIGKILL at its phase (proof the phase was reached), nothing of it
stays running (workers, ffmpeg), the root is not left locked, and the plain rerun finishes with
the output a run that was never killed makes: the same files, the same manifest rows, nothing
left in the partial folder. Downloads also never record a clip present with bytes that are not
the mirror's. Phases: ``kinetix.crashpoints.PHASES``.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import sys
from pathlib import Path

import pytest
from _faults import Clean, Run, assert_unlocked, check_like_clean, recorded, rerun, tree
from _roots import TINY, RootClip, build_videos_root, clips

from kinetix.cli.main import main
from kinetix.crashpoints import ENV, PHASES
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))


def crash(argv: list[str], phase: str) -> None:
    """Run ``argv`` with a kill -9 at ``phase``; it must die there and leave nothing running."""
    assert phase.partition(":")[0] in PHASES
    run = Run(argv, **{ENV: phase})
    code, err = run.wait()
    assert code == -signal.SIGKILL, f"the run was not killed at {phase}: exit {code}\n{err}"
    run.assert_no_orphans()


# --- download ------------------------------------------------------------------------------


def download_argv(release: str, split: str, root: Path, server: MirrorServer) -> list[str]:
    return ["download", release, "--split", split, "--root", str(root), "--mirror", server.url,
            "--parallel", "2", "--no-progress"]  # fmt: skip


def clean_download(mirror: MirrorIndex, release: str, split: str, root: Path) -> Clean:
    with MirrorServer(mirror.root) as server:
        assert main(download_argv(release, split, root, server)) == 0
    return tree(root), recorded(root)


def only_mirror_bytes_present(root: Path, mirror: MirrorIndex, release: str, split: str) -> None:
    s = mirror.split(release, split)
    with Manifest(manifest_path(root), readonly=True) as m:
        for row in m.clips(states=["present"]):
            digest = hashlib.sha256((root / row.path).read_bytes()).hexdigest()
            assert digest == s.clips[row.key].sha256, row.key


@pytest.fixture(scope="module")
def clean_k600(mirror, tmp_path_factory) -> Clean:
    return clean_download(mirror, "k600", "val", tmp_path_factory.mktemp("clean-k600"))


@pytest.fixture(scope="module")
def clean_k400_train(mirror, tmp_path_factory) -> Clean:
    return clean_download(mirror, "k400", "train", tmp_path_factory.mktemp("clean-k400"))


@pytest.mark.parametrize(
    "phase", ["download.transfer:3", "download.extract:2", "download.commit", "download.commit:3"]
)
def test_download_killed_at_each_phase_then_rerun(phase, mirror, clean_k600, tmp_path) -> None:
    root = tmp_path / "root"
    with MirrorServer(mirror.root) as server:
        argv = download_argv("k600", "val", root, server)
        crash(argv, phase)
        assert_unlocked(root)
        only_mirror_bytes_present(root, mirror, "k600", "val")
        rerun(argv)
    check_like_clean(root, clean_k600)
    only_mirror_bytes_present(root, mirror, "k600", "val")


@pytest.mark.parametrize(
    "phase", ["download.replacement", "download.transfer:2", "download.extract:3"]
)
def test_k400_train_killed_around_the_replacement_set_then_rerun(
    phase, mirror, clean_k400_train, tmp_path
) -> None:
    # download.replacement: right after the decision to read the set is recorded (a kill while
    # the set itself arrives: tests/test_replacement.py); the others: in the parts.
    s = mirror.split("k400", "train")
    root = tmp_path / "root"
    with MirrorServer(mirror.root) as server:
        argv = download_argv("k400", "train", root, server)
        crash(argv, phase)
        only_mirror_bytes_present(root, mirror, "k400", "train")
        with Manifest(manifest_path(root), readonly=True) as m:
            for key in s.corrupted:  # never present with the damaged part copy
                row = m.get("k400", "train", key)
                assert row is None or row.state != "present" or row.source == "cvdf_replacement"
        rerun(argv)
    check_like_clean(root, clean_k400_train)
    with Manifest(manifest_path(root), readonly=True) as m:
        assert all(m.get("k400", "train", k).source == "cvdf_replacement" for k in s.corrupted)


# --- verify, process, frames ---------------------------------------------------------------


@pytest.fixture(scope="module")
def unverified(tmp_path_factory) -> Path:
    """Eight short clips never verified, one of them truncated (verify quarantines it)."""
    top = tmp_path_factory.mktemp("unverified")
    root = build_videos_root(
        top / "root",
        [RootClip(c, verify=None) for c in clips("val", ["abseiling", "archery"] * 4)],
        TINY,
    )
    with Manifest(manifest_path(root), readonly=True) as m:
        victim = root / next(iter(m.clips())).path
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return root


@pytest.fixture(scope="module")
def verified(unverified, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verified") / "root"
    shutil.copytree(unverified, root)
    assert main(["verify", str(root), "--workers", "2", "--no-progress"]) in (0, 1)
    return root


def derived_argv(stage: str, source: Path, out: Path) -> list[str]:
    return [stage, str(source), "--out", str(out), "--workers", "2", "--no-progress"]


@pytest.fixture(scope="module")
def clean_derived(verified, tmp_path_factory) -> dict[str, Clean]:
    made = {}
    for stage in ("process", "frames"):
        out = tmp_path_factory.mktemp(f"clean-{stage}") / "out"
        assert main(derived_argv(stage, verified, out)) == 0
        made[stage] = (tree(out), recorded(out))
    return made


@pytest.mark.parametrize(
    "phase", ["verify.task", "verify.task:3", "verify.record:2", "verify.quarantine"]
)
def test_verify_killed_at_each_phase_then_rerun(phase, unverified, verified, tmp_path) -> None:
    root = tmp_path / "root"
    shutil.copytree(unverified, root)
    argv = ["verify", str(root), "--workers", "2", "--no-progress"]
    crash(argv, phase)
    assert_unlocked(root)
    done = Run(argv)
    code, err = done.wait()
    assert code in (0, 1), err  # 1: the truncated clip was found bad, as in the clean run
    check_like_clean(root, (tree(verified), recorded(verified)))


@pytest.mark.parametrize(
    "stage, phase",
    [
        ("process", "process.task"),
        ("process", "process.record:2"),
        ("frames", "frames.task"),
        ("frames", "frames.placed:2"),
        ("frames", "frames.record:2"),
    ],
)
def test_derived_stage_killed_at_each_phase_then_rerun(
    stage, phase, verified, clean_derived, tmp_path
) -> None:
    out = tmp_path / "out"
    argv = derived_argv(stage, verified, out)
    crash(argv, phase)
    assert_unlocked(out)
    rerun(argv)
    check_like_clean(out, clean_derived[stage])
