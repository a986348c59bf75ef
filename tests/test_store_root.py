"""store/root.py: one object opens a root (lock, write check, manifest) and types its meta."""

from __future__ import annotations

import pytest

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelStyle
from kinetix.errors import ConfigError, LockedError
from kinetix.store.downstream import DownstreamInfo
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.store.root import DatasetRoot, RootInfo, RootMeta, read_root_meta


def _clips(split: str, n: int) -> list[Clip]:
    return [Clip("k400", split, f"vid{split}{i:05d}", 0, 10, "abseiling", None) for i in range(n)]


def test_meta_written_with_raw_keys_reads_typed(tmp_path) -> None:
    """A root written key by key (as every kinetix before DatasetRoot did) opens typed."""
    with Manifest(manifest_path(tmp_path)) as m:
        m.set_meta("kind", "frames")
        m.set_meta("release", "k700-2020")
        m.set_meta("layout", "torchvision")
        m.set_meta("source_root", "/data/k700")
        m.set_meta("settings", '{"fps": 8}')
        m.set_meta("downstream", "countix")
        m.set_meta("downstream_split", "val,train")
    meta = read_root_meta(tmp_path)
    assert meta.kind == meta.role == "frames" and meta.is_frames and meta.derived
    assert (meta.release, meta.label_style, meta.source_root) == (
        "k700-2020", LabelStyle.TORCHVISION, "/data/k700",
    )  # fmt: skip
    assert meta.settings == '{"fps": 8}'
    assert meta.downstream == DownstreamInfo("countix", ("val", "train"))
    info = RootInfo.read(tmp_path)
    assert (info.kind, info.release, info.layout) == ("frames", "k700-2020", "torchvision")
    with pytest.raises(ConfigError, match="is a frames root, not a videos root; use frames"):
        info.require("videos", "use frames")


def test_a_root_that_records_nothing_is_a_raw_videos_root(tmp_path) -> None:
    with Manifest(manifest_path(tmp_path)):
        pass
    meta = read_root_meta(tmp_path)
    assert meta.recorded_kind is None and meta.kind == meta.role == "videos" and meta.is_videos
    assert meta.label_style is LabelStyle.RAW and not meta.derived and meta.downstream is None
    assert RootMeta(recorded_kind="videos", source_root="/src").role == "derived"


def test_write_open_locks_records_and_counts(tmp_path) -> None:
    with DatasetRoot.open(tmp_path, write=True, fix="pick another") as ds:
        assert ds.writable
        with pytest.raises(LockedError, match="in use by another kinetix process"):
            DatasetRoot.open(tmp_path, write=True)
        ds.record(kind="videos", release="k400", layout="raw", mirror=None)
        assert (ds.meta.release, ds.meta.mirror) == ("k400", None)
        ds.manifest.add_clips(_clips("val", 3) + _clips("train", 2))
        ds.manifest.update("k400", "val", "vidval00000_000000_000010", state="present", path="a")
        with pytest.raises(ValueError, match="unknown root meta keys"):
            ds.record(colour="blue")
    with DatasetRoot.open(tmp_path) as ds:  # read-only, no lock: a writer may follow at once
        assert not ds.writable
        assert ds.counts_by_state() == {"missing": 4, "present": 1}
        assert ds.counts_by_state(split="val") == {"missing": 2, "present": 1}
        assert [r.key for r in ds.usable_clips(include_unverified=True)] == [
            "vidval00000_000000_000010"
        ]
        assert list(ds.usable_clips()) == []  # never verified
    with DatasetRoot.open(tmp_path, write=True):
        pass  # the lock was released


def test_write_open_of_an_unwritable_root_names_the_fix(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"cannot write to .*file.*; choose a writable --out"):
        DatasetRoot.open(blocker, write=True, fix="choose a writable --out")
