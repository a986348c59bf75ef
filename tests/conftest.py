"""Shared fixtures: the real metadata folder, and the synthetic CVDF mirror built once, served."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _fakes import SleepRecorder

from kinetix.synthetic.mirror import DEFAULT_VIDEO, MirrorIndex, MirrorSpec, build_mirror
from kinetix.transfer import retry

# Helpers test modules import (and take as a plugin for its fixtures): rewrite their asserts too.
pytest.register_assert_rewrite("_faults", "_procs")

if TYPE_CHECKING:
    from kinetix.synthetic.server import MirrorServer

# The session mirror. Tests treat it as read-only: copy a file before damaging it.
MIRROR_SPEC = MirrorSpec(
    # K400 train (one real row per class) is where CVDF's corrupted clips and their
    # replacement set are.
    releases={
        "k400": ("val", "train"),
        "k600": ("val",),
        "k700-2020": ("val",),
        "k700": ("val",),
    },
    classes=3,
    # K400 val gets 5 classes (15 clips, 3 parts); the others 3 awkward-name classes: the
    # apostrophe, upper case and parentheses (K600 also its lower-case "american"). In
    # K700-2020 val none of those has an id starting with "-", so air drumming joins them.
    class_names={
        "k400": (
            "massaging person's head",
            "passing American football (in game)",
            "skiing (not slalom or crosscountry)",
            "tying knot (not on a tie)",
            "abseiling",
        ),
        "k700-2020": (
            "massaging person's head",
            "passing American football (in game)",
            "air drumming",
        ),
    },
    clips_per_class=3,
    shard_size=6,
    plain_tar_shard=True,
    appledouble=True,
    corrupted=2,
    missing=2,
    source_videos=4,
    source_releases=("k700",),
    video=DEFAULT_VIDEO,  # 64x80, 10 fps, index pattern: frame_index() reads frames back
)


@pytest.fixture(scope="session")
def shared_kinetics() -> Path:
    """The real Kinetics metadata folder (``$KINETIX_SHARED_DATA`` or ``../shared/...``)."""
    env = os.environ.get("KINETIX_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    if not env:
        path = path / "data" / "kinetics"
    if not path.is_dir():
        pytest.skip(f"real Kinetics metadata not found at {path} (set KINETIX_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorIndex:
    """A small synthetic CVDF mirror (see ``MIRROR_SPEC``); read-only for tests."""
    return build_mirror(tmp_path_factory.mktemp("mirror"), MIRROR_SPEC)


@pytest.fixture
def mirror_server(mirror: MirrorIndex) -> Iterator[MirrorServer]:
    """The session mirror served on 127.0.0.1 (a free port); faults cleared, then stopped."""
    from kinetix.synthetic.server import MirrorServer

    server = MirrorServer(mirror.root).start()
    try:
        yield server
    finally:
        server.clear_faults()
        server.stop()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    """Retry waits recorded, never slept (``retry.sleep`` patched)."""
    recorder = SleepRecorder()
    monkeypatch.setattr(retry, "sleep", recorder)
    return recorder


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A real SLURM cluster that takes jobs, or a skip saying why (a failure where CI brought one
    up: ``KINETIX_TEST_SLURM=required``)."""
    from _cluster import slurm_required, slurm_unavailable

    why = slurm_unavailable()
    if why is not None:
        if slurm_required():
            pytest.fail(f"KINETIX_TEST_SLURM=required but SLURM is not usable: {why}")
        pytest.skip(f"no SLURM here: {why}")


# AVA-Kinetics and Countix: K700-2020 val and test, with the clips of two rows of each set
# per split in the shards (and the usual one missing clip each).
DOWNSTREAM_SPEC = MirrorSpec(
    releases={"k700-2020": ("val", "test")},
    classes=1,
    clips_per_class=2,
    missing=1,
    downstream_clips=2,
    video=DEFAULT_VIDEO,
)


@pytest.fixture(scope="session")
def downstream_mirror(
    tmp_path_factory: pytest.TempPathFactory, shared_kinetics: Path
) -> MirrorIndex:
    """A mirror whose K700-2020 val/test shards hold clips AVA-Kinetics and Countix rows need.

    Its annotation tarballs are made from the real files, so without them the tests that use
    it skip (and say where to point ``KINETIX_SHARED_DATA``) instead of failing on a 404.
    """
    return build_mirror(tmp_path_factory.mktemp("downstream-mirror"), DOWNSTREAM_SPEC)


@pytest.fixture
def downstream_server(downstream_mirror: MirrorIndex) -> Iterator[MirrorServer]:
    from kinetix.synthetic.server import MirrorServer

    server = MirrorServer(downstream_mirror.root).start()
    try:
        yield server
    finally:
        server.stop()
