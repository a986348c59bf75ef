"""Annotation stats: class balance, unlabelled rows, duplicates and short clips."""

from __future__ import annotations

from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.stats import compute_stats

DATA = Path(__file__).parent / "data" / "annotations"


def test_labelled_split_with_a_duplicate_video() -> None:
    stats = compute_stats(read_annotations(DATA / "k600_val.csv", release="k600"))
    # 10 abseiling, 3 passing american football (not in game), 1 cracking knuckles, 1 cracking neck
    assert (stats.rows, stats.labels, stats.unlabeled) == (15, 4, 0)
    assert (stats.clips_per_class_min, stats.clips_per_class_median, stats.clips_per_class_max) == (
        1, 2.0, 10,
    )  # fmt: skip
    assert (stats.duplicate_youtube_ids, stats.duplicate_keys) == (1, 0)
    assert (stats.short_clips, stats.duration_min, stats.duration_max) == (0, 10, 10)
    assert stats.splits == {"val": 15} and stats.releases == {"k600": 15}


def test_short_k700_clips() -> None:
    stats = compute_stats(read_annotations(DATA / "k700_val.csv", release="k700"))
    assert (stats.short_clips, stats.duration_min, stats.duration_max) == (2, 5, 10)


def test_unlabelled_split() -> None:
    stats = compute_stats(read_annotations(DATA / "k700_2020_test_crlf.csv", release="k700-2020"))
    assert stats.unlabeled == stats.rows == 29
    assert stats.labels == 0 and stats.clips_per_class_median is None


def test_duplicate_keys_are_counted() -> None:
    clips = read_annotations(DATA / "k400_val.csv", release="k400")
    stats = compute_stats([*clips, clips[0], clips[0]._replace(label="air drumming")])
    assert (stats.duplicate_keys, stats.duplicate_youtube_ids) == (1, 1)
    assert stats.as_dict()["rows"] == len(clips) + 2


def test_empty() -> None:
    stats = compute_stats([])
    assert stats.rows == 0 and stats.duration_min is None and stats.releases == {}
    assert compute_stats([Clip("k400", "val", "0wR5jVB-WPk", 0, 10)]).labels == 0
