"""A disk that fills up while a shard's ``.part`` is written: the partial is kept, the run stops."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinetix.cli.main import main
from kinetix.store.layout import LabelStyle, clip_relpath, partial_dir
from kinetix.transfer.resume import ResumeState


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def _mount(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True).returncode == 0


@pytest.fixture
def small_partial_dir(tmp_path: Path) -> Iterator[Path]:
    """``ROOT/.kinetix/partial`` on a real 128 KiB tmpfs: writes there hit a real ENOSPC."""
    root = tmp_path / "root"
    partial = partial_dir(root)
    partial.mkdir(parents=True)
    if not _mount(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(partial)]):
        pytest.skip("needs permission to mount a tmpfs (root in a container or VM)")
    try:
        yield partial
    finally:
        subprocess.run(["umount", "-l", str(partial)], capture_output=True)


def test_enospc_writing_a_part_keeps_it_and_stops_with_one_line(
    tmp_path, mirror, mirror_server, small_partial_dir, capsys
):
    # It used to read "partial file kept for resume; nothing was kept; fetching it again from
    # scratch", delete the resumable partial and fetch the shard again onto the full disk.
    root = tmp_path / "root"
    first = mirror.split("k400", "val").shards[0]
    argv = ["download", "k400", "--split", "val", "--root", str(root), "--no-progress"]
    argv += ["--mirror", mirror_server.url, "--parallel", "1", "--connections", "2"]
    argv += ["--piece-size", "32K"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert "no space left" in errors[0] and "rerun the same command to resume" in errors[0]
    assert "corrupt" not in err and "from scratch" not in err
    part = small_partial_dir / (first.replace("/", "__") + ".part")
    state = ResumeState.load(part.with_name(part.name + ".state"))
    assert state is not None and state.done_bytes > 0
    size = mirror.path(first).stat().st_size
    stats = mirror_server.stats
    assert stats.bytes_sent[first] <= size  # not fetched a second time onto the full disk
    assert sum(stats.bytes_sent.values()) - stats.bytes_sent[first] < 64 << 10  # it stopped

    # Room again: the rerun resumes the kept partial and finishes.
    assert _mount(["mount", "-o", "remount,size=16m", str(small_partial_dir)])
    served = mirror_server.stats.bytes_sent[first]
    assert main(argv) == 0
    assert mirror_server.stats.bytes_sent[first] - served < size - state.done_bytes + (64 << 10)
    split = mirror.split("k400", "val")
    for clip in split.clips.values():
        if clip.shard is None and clip.replacement is None:
            continue
        path = root / clip_relpath("val", clip.clip.label, clip.key, LabelStyle.RAW)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == clip.sha256
