"""Every real annotation file in ../shared/data/kinetics parses to the figures SOURCES.md gives."""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.select import match_keyframes
from kinetix.catalog.stats import compute_stats
from kinetix.errors import AnnotationError


def shared_dir() -> Path:
    env = os.environ.get("KINETIX_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kinetics"


SHARED = shared_dir()
pytestmark = pytest.mark.skipif(
    not (SHARED / "SOURCES.md").is_file(),
    reason=f"real Kinetics metadata not found at {SHARED} (set KINETIX_SHARED_DATA)",
)

# The release each annotation file belongs to, and the split(s) its rows carry after
# normalisation (SOURCES.md, "Columns and split values"). Countix and AVA-Kinetics carry
# no split; the one in the name of the file is passed in. (The columns table of SOURCES.md
# also names countix_test, kinetics_600_holdout_test and kinetics-700_test, which were not
# obtainable and have no row in the file table.)
ANNOTATION_FILES: dict[str, tuple[str | None, str | None, str]] = {
    "ava_kinetics/kinetics_test_v1.0.csv": (None, "test", "test"),
    "countix/countix_train.csv": (None, "train", "train"),
    "countix/countix_val.csv": (None, "val", "val"),
    "k400/derived/tiny_train.csv": ("k400", None, "train"),
    "k400/derived/tiny_val.csv": ("k400", None, "val"),
    "k400/kinetics-400_test.csv": ("k400", None, "test"),
    "k400/test.csv": ("k400", None, "test"),
    "k400/val.csv": ("k400", None, "val"),
    "k600/deepmind/test.csv": ("k600", None, "test"),
    "k600/deepmind/validate.csv": ("k600", None, "val"),
    "k600/kinetics-600_val.csv": ("k600", None, "val"),
    "k600/kinetics_600_test.csv": ("k600", None, "test"),
    "k600/test.csv": ("k600", None, "test"),
    "k600/val.txt": ("k600", None, "val"),
    "k700/kinetics-700_val.csv": ("k700", None, "val"),
    "k700_2020/kinetics-700_2020_test.csv": ("k700-2020", None, "test"),
    "k700_2020/kinetics-700_2020_val.csv": ("k700-2020", None, "val"),
    "k700_2020/test.csv": ("k700-2020", None, "test"),
    "k700_2020/val.csv": ("k700-2020", None, "val"),
}


def sources_table() -> dict[str, tuple[int | None, int | None]]:
    """``file -> (rows, labels)`` from the table in SOURCES.md (first number of each cell)."""
    figures = {}
    for line in (SHARED / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 8 or not cells[1].startswith("`"):
            continue
        rows = re.match(r"[\d,]+", cells[5])
        labels = re.match(r"[\d,]+", cells[6])
        figures[cells[1].strip("`")] = (
            int(rows.group().replace(",", "")) if rows else None,
            int(labels.group().replace(",", "")) if labels else None,
        )
    return figures


FIGURES = sources_table() if (SHARED / "SOURCES.md").is_file() else {}


def present(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{name} is listed in SOURCES.md but not present in {SHARED}")
    return path


# Files of the table that hold no clip rows: path lists, readmes, class lists.
NOT_ANNOTATIONS = sorted(
    name
    for name in FIGURES
    if name.endswith(("_path.txt", "readme.md", "readme.txt")) or name.startswith("labels/")
)
ZIP = "k600/deepmind_zip/kinetics_600_val.zip"


def test_every_file_of_the_table_is_tested() -> None:
    assert set(FIGURES) == set(ANNOTATION_FILES) | set(NOT_ANNOTATIONS) | {ZIP}


@pytest.mark.parametrize("name", sorted(ANNOTATION_FILES))
def test_rows_labels_and_splits_match_sources(name: str, caplog: pytest.LogCaptureFixture) -> None:
    path = present(name)
    release, split, expected_split = ANNOTATION_FILES[name]
    with caplog.at_level(logging.WARNING, logger="kinetix.catalog.parse"):
        clips = read_annotations(path, release=release, split=split)
    rows, labels = FIGURES[name]
    passed_over = caplog.text.count("passed over an entry")
    # val.txt counts its stray single-space entry among the 29,792 names; it is no clip
    assert len(clips) + passed_over == rows
    assert passed_over == (1 if name == "k600/val.txt" else 0)
    if labels is not None:
        assert len({c.label for c in clips if c.label is not None}) == labels
    else:
        assert {c.label for c in clips} == {None}
    assert {c.split for c in clips} == {expected_split}
    registry = LabelRegistry.for_release(clips[0].release)
    assert all(c.label in registry.indices for c in clips if c.label is not None)


def test_deepmind_zip_holds_the_val_csv_and_json(tmp_path: Path) -> None:
    archive = present(ZIP)
    csv_clips = read_annotations(present("k600/kinetics-600_val.csv"), release="k600")
    assert read_annotations(archive, release="k600") == csv_clips
    # the JSON member, read on its own: keyed by youtube id, so the 6 duplicate ids collapse
    with zipfile.ZipFile(archive) as zf:
        json_path = Path(zf.extract("kinetics_val.json", tmp_path))
    json_clips = read_annotations(json_path, release="k600")
    assert len(json_clips) == 29_994
    assert {c.key for c in json_clips} <= {c.key for c in csv_clips}
    by_key = {c.key: c.label for c in csv_clips}
    assert all(by_key[c.key] == c.label for c in json_clips)


def test_source_quirks_show_in_stats() -> None:
    k400_val = read_annotations(present("k400/val.csv"), release="k400")
    assert Counter(c.is_cc for c in k400_val) == {False: 19_387, True: 519}
    assert (
        compute_stats(
            read_annotations(present("k600/kinetics-600_val.csv"), release="k600")
        ).duplicate_youtube_ids
        == 6
    )
    k700 = compute_stats(read_annotations(present("k700/kinetics-700_val.csv"), release="k700"))
    assert (k700.duplicate_youtube_ids, k700.short_clips, k700.duplicate_keys) == (54, 6, 0)
    k600_test = compute_stats(
        read_annotations(present("k600/kinetics_600_test.csv"), release="k600")
    )
    assert k600_test.duration_max == k600_test.duration_min == 10


def test_ava_keyframes_fall_in_k700_test_clips() -> None:
    ava = read_annotations(present("ava_kinetics/kinetics_test_v1.0.csv"), split="test")
    k700_2020 = read_annotations(present("k700_2020/kinetics-700_2020_test.csv"), release="k700")
    matched, unmatched = match_keyframes(ava, k700_2020)
    # K700-2020 test keeps the K700 test videos AVA-Kinetics was built on, bar a few
    assert len(matched) + len(unmatched) == len(ava)
    assert len(matched) > 0.99 * len(ava)
    assert all(c.time_start <= c.extra["timestamp"] <= c.time_end for c in matched)  # type: ignore[index]


@pytest.mark.parametrize("name", NOT_ANNOTATIONS)
def test_files_that_are_not_annotations_are_rejected(name: str) -> None:
    with pytest.raises(AnnotationError, match=re.escape(str(SHARED / name))):
        read_annotations(present(name), release="k400", split="val")
