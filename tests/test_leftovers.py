"""What a killed run leaves (hidden clip temps, spent shard .part/.state files, snapshot temps)
is removed by the next download or verify of the root; nothing else is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kinetix.config import DownloadConfig, VerifyConfig
from kinetix.download import download
from kinetix.process.verify import verify_dataset
from kinetix.store.layout import manifest_path, partial_dir, state_dir
from kinetix.store.leftovers import MARKER
from kinetix.store.manifest import Manifest
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))


def _config(root: Path, server: MirrorServer) -> DownloadConfig:
    return DownloadConfig(root=root, release="k400", split="val", mirror=server.url, progress=False)


def _plant(root: Path) -> tuple[list[Path], list[Path]]:
    """What kill -9 at various points leaves, and a partial that is still worth resuming."""
    with Manifest(manifest_path(root), readonly=True) as m:
        done = [s["name"] for s in m.shards() if s["state"] == "done"]
        clip = next(iter(m.clips(states=["present"])))
    folder = (root / clip.path).parent
    partial = partial_dir(root)
    partial.mkdir(parents=True, exist_ok=True)
    spent = done[0].replace("/", "__") + ".part"
    stale = [
        folder / f".{clip.key}.mp4.kx-part",  # CVDF extraction, killed mid-member
        folder / f".{clip.key}.mp4.w1234.part",  # a YouTube trim, killed
        folder / ".-abcdefghij_000010_000020.mp4.kx-part",  # a clip never placed
        state_dir(root) / ".manifest.sqlite.x1y2.kx-part",  # a snapshot being published
        partial / spent,  # a recorded shard's .part: killed after the commit, before cleanup
        partial / (spent + ".state"),
        partial / "lonely.tar.gz.part.state",  # a .state whose .part is gone
        partial / "400__val__part_9.tar.gz.part.state.tmp",  # a half-written .state
    ]
    kept = [
        partial / "400__val__part_9.tar.gz.part",  # a shard not recorded yet: resume from it
        partial / "400__val__part_9.tar.gz.part.state",
        folder / "notes.txt",  # not kinetix's temp
        folder / ".hidden.mp4",
    ]
    for path in stale + kept:
        path.write_bytes(b"left behind")
    (state_dir(root) / MARKER).write_text("999999\n")  # the killed run's mark
    return stale, kept


@pytest.fixture
def root(tmp_path, mirror_server) -> Path:
    root = tmp_path / "root"
    report = download(_config(root, mirror_server))
    assert report.ok and report.placed_keys
    assert not (state_dir(root) / MARKER).exists()  # a finished run leaves no mark
    return root


def test_a_rerun_download_removes_what_a_killed_run_left(root, mirror_server):
    stale, kept = _plant(root)
    before = mirror_server.stats.total_requests
    again = download(_config(root, mirror_server))
    assert again.ok and not again.placed_keys
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert not (state_dir(root) / MARKER).exists()
    assert mirror_server.stats.total_requests - before <= 2  # annotations/path list at most


def test_verify_removes_them_too(root):
    stale, kept = _plant(root)
    report = verify_dataset(root, VerifyConfig(workers=0))
    assert not report.errors and not report.unknown  # temps are never "unknown clips"
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_without_the_mark_a_swept_root_is_not_walked_again(root, mirror_server):
    """The sweep walks the clip folders only after a killed run (cost: none on a clean rerun)."""
    stale, _ = _plant(root)
    (state_dir(root) / MARKER).unlink()
    download(_config(root, mirror_server))
    assert all(p.exists() for p in stale)


def test_a_root_from_before_the_mark_is_swept_once(root, mirror_server):
    stale, _ = _plant(root)
    (state_dir(root) / MARKER).unlink()
    with Manifest(manifest_path(root)) as m:
        m.execute("DELETE FROM meta WHERE key='leftovers'")
        m._db.commit()
    download(_config(root, mirror_server))
    assert [p for p in stale if p.exists()] == []


def test_process_clears_its_own_partial_folder(root, tmp_path):
    from kinetix.config import ProcessConfig
    from kinetix.process.transcode import process_dataset

    out = tmp_path / "small"

    process_dataset(root, out, ProcessConfig(short_side=32, workers=0))
    leftover = partial_dir(out) / "val.-abcdefghij_000010_000020.mp4"
    leftover.write_bytes(b"half an encode")
    shutil.copy(leftover, partial_dir(out) / "val.other.mp4")
    process_dataset(root, out, ProcessConfig(short_side=32, workers=0))
    assert not any(partial_dir(out).iterdir())
