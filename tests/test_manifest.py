"""The manifest keeps one row per clip, applies worker updates, and survives reopen and locking."""

from __future__ import annotations

import sqlite3

import pytest

from kinetix.catalog.clip import Clip
from kinetix.errors import LockedError, ManifestError
from kinetix.store.layout import LabelStyle, clip_relpath, label_folder
from kinetix.store.lock import RootLock
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest

CLIPS = [
    Clip("k400", "val", "-0BcDeFgH1I", 3, 13, "massaging person's head", False),
    Clip("k400", "val", "0wR5jVB-WPk", 417, 427, "abseiling", True),
    Clip("k400", "test", "0wR5jVB-WPk", 417, 427, None),
]


def test_add_is_idempotent_and_keeps_state(tmp_path) -> None:
    m = Manifest(tmp_path / "m.sqlite")
    assert m.add_clips(CLIPS, {"abseiling": 0}) == 3
    m.update(
        "k400", "val", CLIPS[1].key, state=ClipState.PRESENT, path="val/abseiling/x.mp4", bytes=10
    )
    assert m.add_clips(CLIPS) == 0  # re-registering never resets progress
    row = m.get("k400", "val", CLIPS[1].key)
    assert row is not None and row.state == "present" and row.bytes == 10
    assert row.label_index == 0 and row.is_cc == 1
    assert row.to_clip() == CLIPS[1]
    m.close()


def test_filters_and_null_handling(tmp_path) -> None:
    with Manifest(tmp_path / "m.sqlite") as m:
        m.add_clips(CLIPS)
        m.apply(
            [
                ClipUpdate(
                    "k400", "val", CLIPS[0].key, {"state": "failed", "error_code": "http_404"}, True
                )
            ]
        )
        assert [r.key for r in m.clips(states=["failed"])] == [CLIPS[0].key]
        assert m.get("k400", "val", CLIPS[0].key).attempts == 1
        assert {r.split for r in m.clips(labels=[None])} == {"test"}
        assert m.count(split="val", verify=[None]) == 2
        assert m.splits() == [("k400", "test"), ("k400", "val")]


def test_unknown_column_is_rejected(tmp_path) -> None:
    with Manifest(tmp_path / "m.sqlite") as m, pytest.raises(ManifestError, match="unknown"):
        m.update("k400", "val", "x", colour="red")


def test_readonly_open_of_missing_manifest_says_what_to_do(tmp_path) -> None:
    with pytest.raises(ManifestError, match="kinetix download"):
        Manifest(tmp_path / "nope.sqlite", readonly=True)


def test_not_a_database(tmp_path) -> None:
    bad = tmp_path / "m.sqlite"
    bad.write_text("hello, I am not sqlite" * 100)
    with pytest.raises((ManifestError, sqlite3.DatabaseError)):
        Manifest(bad)


def test_shards_roundtrip(tmp_path) -> None:
    with Manifest(tmp_path / "m.sqlite") as m:
        m.set_shard("http://x/part_0.tar.gz", release="k400", split="val", size=5, state="partial")
        m.set_shard("http://x/part_0.tar.gz", bytes_done=5, state="done", count_attempt=True)
        s = m.shard("http://x/part_0.tar.gz")
        assert s["state"] == "done" and s["bytes_done"] == 5 and s["attempts"] == 1


def test_lock_excludes_a_second_holder(tmp_path) -> None:
    with RootLock(tmp_path):
        other = RootLock(tmp_path)
        with pytest.raises(LockedError, match="in use by another kinetix process"):
            other.acquire()
    with RootLock(tmp_path):  # released on exit
        pass


@pytest.mark.parametrize(
    ("style", "folder"),
    [
        (LabelStyle.RAW, "massaging person's head"),
        (LabelStyle.UNDERSCORE, "massaging_person's_head"),
        (LabelStyle.TORCHVISION, "massaging_persons_head"),
    ],
)
def test_label_folders(style: LabelStyle, folder: str) -> None:
    assert label_folder("massaging person's head", style) == folder
    assert label_folder(None, style) == "_unlabeled"
    assert clip_relpath(
        "val", "skiing (not slalom or crosscountry)", "k", LabelStyle.TORCHVISION
    ) == ("val/skiing_not_slalom_or_crosscountry/k.mp4")


def test_shard_members_index(tmp_path) -> None:
    with Manifest(tmp_path / "m.sqlite") as m:
        m.set_shard_members("u/part_0", [("a", 1), ("b", 2)])
        m.set_shard_members("u/part_1", [("c", 3)])
        m.set_shard_members("u/part_0", [("a", 1)])  # a re-read replaces the old list
        assert m.shard_index(["u/part_0", "u/part_1"]) == {"a": "u/part_0", "c": "u/part_1"}
        assert m.shard_index(["u/part_1"]) == {"c": "u/part_1"}
