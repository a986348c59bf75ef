"""store/downstream.py: the per-row record of a Countix / AVA-Kinetics root and its read model."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kinetix.catalog.clip import Clip
from kinetix.errors import ConfigError, ManifestError
from kinetix.store.downstream import (
    DownstreamInfo,
    ResolvedRow,
    check_downstream,
    copy_downstream,
    downstream_counts,
    downstream_info,
    downstream_rows,
    record_downstream,
)
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import SCHEMA_VERSION, Manifest

CLIPS = [
    Clip("k700-2020", "val", "aaaaaaaaaaa", 10, 20, "juggling balls"),
    Clip("k700-2020", "val", "bbbbbbbbbbb", 0, 10, "juggling balls"),
    Clip("k700-2020", "val", "ccccccccccc", 5, 15, "juggling balls"),
]


def _root(tmp_path: Path) -> Manifest:
    m = Manifest(manifest_path(tmp_path))
    m.set_meta("release", "k700-2020")
    m.add_clips(CLIPS)
    a, b = CLIPS[0].key, CLIPS[1].key
    m.update("k700-2020", "val", a, state="present", path=f"val/juggling balls/{a}.mp4", fps=25.0,
             start_offset=-0.4, num_frames=260, width=320, height=240)  # fmt: skip
    m.update("k700-2020", "val", b, state="failed", error_code="unavailable")
    return m


ROWS = [
    ResolvedRow(2, "aaaaaaaaaaa", CLIPS[0].key, None),
    ResolvedRow(3, "aaaaaaaaaaa", CLIPS[0].key, None),  # two rows, one clip
    ResolvedRow(4, "bbbbbbbbbbb", CLIPS[1].key, None),
    ResolvedRow(5, "ccccccccccc", CLIPS[2].key, None),
    ResolvedRow(6, "ddddddddddd", None, "no_clip"),
    ResolvedRow(7, "eeeeeeeeeee", None, "count_not_positive", rejected=True),
    ResolvedRow(8, "fffffffffff", "fffffffffff_000000_000010", None),  # not a row of the root
]


def test_each_row_reads_its_clip_state_and_reason(tmp_path: Path) -> None:
    with _root(tmp_path) as m:
        assert downstream_info(m) is None
        assert record_downstream(m, "countix", "val", ROWS) == len(ROWS)
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert downstream_info(m) == DownstreamInfo("countix", ("val",))
        rows = list(downstream_rows(m))
        counts = downstream_counts(m)
    assert [r.line for r in rows] == [2, 3, 4, 5, 6, 7, 8]
    got = [(r.state, r.reason, r.present) for r in rows]
    assert got == [
        ("present", None, True), ("present", None, True), ("failed", "unavailable", False),
        ("missing", None, False), ("unresolved", "no_clip", False),
        ("rejected", "count_not_positive", False), ("not_selected", None, False),
    ]  # fmt: skip
    first = rows[0]
    assert first.path == f"val/juggling balls/{CLIPS[0].key}.mp4"
    assert (first.time_start, first.fps, first.start_offset, first.num_frames) == (
        10, 25.0, -0.4, 260,
    )  # fmt: skip
    assert rows[4].path is None and rows[4].key is None
    (split,) = counts
    assert (split.release, split.split, split.rows, split.present) == ("countix", "val", 7, 2)
    assert split.missing == {
        ("failed", "unavailable"): 1, ("missing", None): 1, ("unresolved", "no_clip"): 1,
        ("rejected", "count_not_positive"): 1, ("not_selected", None): 1,
    }  # fmt: skip


def test_a_rerun_replaces_a_splits_rows_and_keeps_the_split_list(tmp_path: Path) -> None:
    with _root(tmp_path) as m:
        record_downstream(m, "countix", "val", ROWS)
        record_downstream(m, "countix", "train", ROWS[:1])
        record_downstream(m, "countix", "val", ROWS[:2])
        assert downstream_info(m) == DownstreamInfo("countix", ("val", "train"))
        assert m.get_meta("downstream_split") == "val,train"
        assert [(r.split, r.line) for r in downstream_rows(m)] == [
            ("train", 2), ("val", 2), ("val", 3),
        ]  # fmt: skip
        assert [r.line for r in downstream_rows(m, "val")] == [2, 3]
        check_downstream(m, "countix", tmp_path)
        with pytest.raises(ConfigError, match=r"holds countix \(val, train\), not ava-kinetics"):
            check_downstream(m, "ava-kinetics", tmp_path)


def test_a_read_only_manifest_cannot_be_written(tmp_path: Path) -> None:
    _root(tmp_path).close()
    with (
        Manifest(manifest_path(tmp_path), readonly=True) as m,
        pytest.raises(ManifestError, match="read-only"),
    ):
        record_downstream(m, "countix", "val", ROWS)


def test_a_schema_2_root_opens_read_only_and_migrates_when_written(tmp_path: Path) -> None:
    _root(tmp_path).close()
    db = sqlite3.connect(manifest_path(tmp_path))
    with db:  # what kinetix before schema 3 left
        db.execute("DROP TABLE downstream_rows")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.close()
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert downstream_info(m) is None
        assert list(downstream_rows(m)) == [] and downstream_counts(m) == []
        assert m.get_meta("schema_version") == "2"
        assert m.count(states=["present"]) == 1  # the clips read as they were
    with Manifest(manifest_path(tmp_path)) as m:
        assert m.get_meta("schema_version") == str(SCHEMA_VERSION) == "3"
        assert record_downstream(m, "countix", "val", ROWS[:1]) == 1
        assert [r.state for r in downstream_rows(m)] == ["present"]


def test_a_derived_root_gets_the_rows_once_and_reads_its_own_clips(tmp_path: Path) -> None:
    source, derived = tmp_path / "src", tmp_path / "small"
    with _root(source) as m:
        record_downstream(m, "countix", "val", ROWS)
        m.set_meta("downstream_recorded:val", "files-1")
    with (
        Manifest(manifest_path(source), readonly=True) as src,
        Manifest(manifest_path(derived)) as m,
    ):
        m.set_meta("release", "k700-2020")
        m.add_clips(CLIPS[:1])  # only one clip processed so far, and not yet present
        assert copy_downstream(src, m) == len(ROWS)
        assert copy_downstream(src, m) == 0  # same files: left alone
        assert downstream_info(m) == DownstreamInfo("countix", ("val",))
        states = [r.state for r in downstream_rows(m)]
    assert states[:4] == ["missing", "missing", "not_selected", "not_selected"]
