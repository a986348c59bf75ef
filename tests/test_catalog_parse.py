"""read_annotations on the committed real excerpts: every variant, and file:line errors."""

from __future__ import annotations

import gzip
import logging
import zipfile
from pathlib import Path

import pytest

from kinetix.catalog.clip import Clip
from kinetix.catalog.parse import read_annotations
from kinetix.errors import AnnotationError, ConfigError

DATA = Path(__file__).parent / "data" / "annotations"


def data_lines(name: str) -> list[bytes]:
    """The excerpt's lines after the header, line endings kept."""
    return (DATA / name).read_bytes().splitlines(keepends=True)[1:]


def write_variant(tmp_path: Path, name: str, lines: list[bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize(
    ("name", "release"),
    [
        ("k400_val.csv", "k400"),
        ("k400_test_unlabelled.csv", "k400"),
        ("k600_val.csv", "k600"),
        ("k600_validate_deepmind.csv", "k600"),
        ("k700_val.csv", "k700"),
        ("k700_2020_val_crlf.csv", "k700-2020"),
        ("k700_2020_test_crlf.csv", "k700-2020"),
    ],
)
def test_every_kinetics_csv_row_becomes_one_clip(name: str, release: str) -> None:
    clips = read_annotations(DATA / name, release=release)
    assert len(clips) == len(data_lines(name))
    for clip, line in zip(clips, data_lines(name)):
        assert isinstance(clip, Clip)
        assert clip.release == release
        assert clip.youtube_id.encode() in line
        assert f",{clip.time_start},{clip.time_end},".encode() in line
        assert clip.split in ("val", "test")
        assert clip.label is None or "\r" not in clip.label


def test_quoted_labels_keep_apostrophe_and_parentheses() -> None:
    clips = read_annotations(DATA / "k400_val.csv", release="k400")
    labels = {c.label for c in clips}
    assert {"abseiling", "air drumming", "massaging person's head"} <= labels
    assert "passing American football (in game)" in labels
    assert not any('"' in label for label in labels if label)
    first = clips[0]
    assert first == Clip("k400", "val", "0wR5jVB-WPk", 417, 427, "abseiling", False, None)
    assert first.key == "0wR5jVB-WPk_000417_000427"
    assert {c.is_cc for c in clips} == {False, True}


def test_crlf_and_validate_are_normalised() -> None:
    val = read_annotations(DATA / "k700_2020_val_crlf.csv", release="k700-2020")
    assert b"\r\n" in (DATA / "k700_2020_val_crlf.csv").read_bytes()
    assert b",validate\r\n" in (DATA / "k700_2020_val_crlf.csv").read_bytes()
    assert {c.split for c in val} == {"val"}
    assert val[0].label == "abseiling"
    test = read_annotations(DATA / "k700_2020_test_crlf.csv", release="k700-2020")
    assert {c.split for c in test} == {"test"}
    assert {c.label for c in test} == {None}
    assert test[0].youtube_id == "---v8pgm1eQ"


def test_unlabelled_test_has_no_label_and_no_is_cc() -> None:
    clips = read_annotations(DATA / "k400_test_unlabelled.csv", release="k400")
    assert all(c.label is None and c.is_cc is None for c in clips)
    assert any(c.youtube_id.startswith("-") for c in clips)


def test_duplicate_youtube_ids_keep_both_segments() -> None:
    clips = read_annotations(DATA / "k600_val.csv", release="k600")
    twice = [c for c in clips if c.youtube_id == "xnC3nngvLCo"]
    assert [(c.label, c.time_start) for c in twice] == [
        ("cracking knuckles", 7),
        ("cracking neck", 83),
    ]
    assert len({c.key for c in twice}) == 2


def test_short_k700_clips_are_kept() -> None:
    clips = read_annotations(DATA / "k700_val.csv", release="k700")
    assert sorted(c.duration for c in clips if c.duration < 10) == [5, 7]


def test_labels_are_interned() -> None:
    clips = read_annotations(DATA / "k400_val.csv", release="k400")
    abseiling = [c.label for c in clips if c.label == "abseiling"]
    assert len(abseiling) > 1 and all(label is abseiling[0] for label in abseiling)


def test_ls_listing_blocks_become_labelled_clips(caplog: pytest.LogCaptureFixture) -> None:
    path = DATA / "k600_val_listing.txt"
    with caplog.at_level(logging.WARNING, logger="kinetix.catalog.parse"):
        clips = read_annotations(path, release="k600")
    mp4 = [line for line in path.read_text().splitlines() if line.endswith(".mp4")]
    assert [c.filename for c in clips] == mp4
    assert {c.label for c in clips} == {"tying knot (not on a tie)", "abseiling"}
    assert {c.split for c in clips} == {"val"}
    # the stray single-space entry is reported with its line, not dropped silently
    assert f"{path}:22: passed over an entry named ' '" in caplog.text


def test_deepmind_json_float_segments() -> None:
    clips = read_annotations(DATA / "k600_val_deepmind.json", release="k600")
    assert clips[0] == Clip("k600", "val", "--07WQ2iBlw", 1, 11, "javelin throw", None, None)
    assert [type(c.time_start) for c in clips] == [int, int, int]


def test_zip_prefers_csv_over_json(tmp_path: Path) -> None:
    archive = tmp_path / "kinetics_600_val.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(DATA / "k600_val.csv", "kinetics_val.csv")
        zf.write(DATA / "k600_val_deepmind.json", "kinetics_val.json")
    clips = read_annotations(archive, release="k600")
    assert clips == read_annotations(DATA / "k600_val.csv", release="k600")


def test_zip_with_only_json_and_split_choice(tmp_path: Path) -> None:
    only_json = tmp_path / "only_json.zip"
    with zipfile.ZipFile(only_json, "w") as zf:
        zf.write(DATA / "k600_val_deepmind.json", "kinetics_val.json")
    assert len(read_annotations(only_json, release="k600")) == 3
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.write(DATA / "k600_val.csv", "kinetics_val.csv")
        zf.write(DATA / "k400_test_unlabelled.csv", "kinetics_test.csv")
    assert {c.split for c in read_annotations(two, release="k400", split="test")} == {"test"}
    with pytest.raises(AnnotationError, match=r"two.zip: expected one annotation member"):
        read_annotations(two, release="k600")


def test_zip_member_errors_name_the_member(tmp_path: Path) -> None:
    lines = data_lines("k600_val.csv")
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "kinetics_val.csv",
            b"label,youtube_id,time_start,time_end,split\n" + lines[0][:-5] + b"\n",
        )
    with pytest.raises(AnnotationError, match=r"bad.zip!kinetics_val.csv:2: expected 5 columns"):
        read_annotations(archive, release="k600")


def test_countix_with_and_without_class(tmp_path: Path) -> None:
    clips = read_annotations(DATA / "countix_train.csv", split="train")
    first = clips[0]
    assert (first.release, first.split, first.key) == ("k700", "train", "APkos_Kqa3M_000017_000027")
    assert first.label == "battle rope training"
    assert first.extra == {"repetition_start": 17.0, "repetition_end": 26.976643, "count": 20}
    # countix_test has no class column: derive that layout from the real rows
    without = [
        b",".join(field for i, field in enumerate(line.split(b",")) if i != 1)
        for line in (DATA / "countix_train.csv").read_bytes().splitlines(keepends=True)
    ]
    unlabelled = read_annotations(write_variant(tmp_path, "c.csv", without), split="test")
    assert [c.label for c in unlabelled] == [None] * len(clips)
    assert [c.key for c in unlabelled] == [c.key for c in clips]


def test_ava_keyframes_become_windows_with_timestamp() -> None:
    clips = read_annotations(DATA / "ava_kinetics_test.csv", split="test")
    assert len(clips) == len((DATA / "ava_kinetics_test.csv").read_bytes().splitlines())
    first = clips[0]
    assert (first.youtube_id, first.extra) == ("000QsbOC-a4", {"timestamp": 191.0})
    assert (first.time_start, first.time_end, first.release, first.label) == (
        186,
        196,
        "k700",
        None,
    )
    for clip in clips:
        assert clip.duration == 10
        assert clip.time_start <= clip.extra["timestamp"] < clip.time_end  # type: ignore[index]


def test_countix_and_ava_need_a_split() -> None:
    with pytest.raises(ConfigError, match="has no split column; pass split="):
        read_annotations(DATA / "ava_kinetics_test.csv")
    with pytest.raises(ConfigError, match="k700 has no split 'holdout_test'"):
        read_annotations(DATA / "countix_train.csv", split="holdout_test")


def test_release_is_required_for_kinetics_files() -> None:
    with pytest.raises(ConfigError, match="do not say which release"):
        read_annotations(DATA / "k400_val.csv")
    with pytest.raises(ConfigError, match="unknown release 'k500'"):
        read_annotations(DATA / "k400_val.csv", release="k500")


def test_split_must_agree_with_the_file() -> None:
    assert read_annotations(DATA / "k700_2020_val_crlf.csv", release="k700-2020", split="validate")
    with pytest.raises(
        AnnotationError, match=r"k400_val.csv:2: row is split 'val' but split='test'"
    ):
        read_annotations(DATA / "k400_val.csv", release="k400", split="test")


# --- malformed rows: file, line, what was expected --------------------------------------------


def corrupt(tmp_path: Path, name: str, row: int, old: bytes, new: bytes) -> Path:
    """The excerpt with ``old`` replaced by ``new`` in data row ``row`` (file line row + 1)."""
    lines = (DATA / name).read_bytes().splitlines(keepends=True)
    assert old in lines[row]
    lines[row] = lines[row].replace(old, new, 1)
    return write_variant(tmp_path, name, lines)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            b",val,",
            b",",
            r":3: expected 6 columns \(label,youtube_id,time_start,time_end,split,is_cc\), got 5",
        ),
        (b",36,46,", b",36.5,46,", r":3: time_start must be a whole number of seconds, got '36.5'"),
        (b",36,46,", b",36,4x,", r":3: time_end must be a whole number of seconds, got '4x'"),
        (b",36,46,", b",36,30,", r":3: time_end 30 must be after time_start 36"),
        (
            b"3caPS4FHFF8",
            b"3caPS4FHFF",
            r":3: youtube_id must be 11 characters from \[A-Za-z0-9_-\], got '3caPS4FHFF'",
        ),
        (b"3caPS4FHFF8", b"3caPS4FHF!8", r":3: youtube_id must be 11 characters"),
        (b",val,0", b",val,yes", r":3: is_cc must be 0 or 1, got 'yes'"),
        (b",val,0", b",holdout_test,0", r":3: split 'holdout_test' is not a split of k400"),
        (
            b",val,0",
            b",dev,0",
            r":3: split must be train, val/validate, test or holdout_test, got 'dev'",
        ),
    ],
)
def test_malformed_csv_row_names_file_and_line(
    tmp_path: Path, old: bytes, new: bytes, message: str
) -> None:
    # data row 2 is line 3 of the file (the header is line 1)
    path = corrupt(tmp_path, "k400_val.csv", 2, old, new)
    with pytest.raises(AnnotationError, match=message) as info:
        read_annotations(path, release="k400")
    assert str(info.value).startswith(f"{path}:3: ")
    assert info.value.line == 3


def test_malformed_crlf_row_line_number(tmp_path: Path) -> None:
    path = corrupt(tmp_path, "k700_2020_val_crlf.csv", 10, b"abseiling,", b"")
    with pytest.raises(AnnotationError, match=r":11: expected 5 columns"):
        read_annotations(path, release="k700-2020")


def test_quoted_newline_does_not_shift_line_numbers(tmp_path: Path) -> None:
    # a label quoted across two physical lines (line 12-13), then a bad row on line 15
    path = corrupt(tmp_path, "k400_val.csv", 11, b'"air drumming"', b'"air\ndrumming"')
    lines = path.read_bytes().splitlines(keepends=True)
    lines[14] = lines[14].replace(b",val,0", b",val,2")
    path.write_bytes(b"".join(lines))
    with pytest.raises(AnnotationError, match=r":15: is_cc must be 0 or 1, got '2'"):
        read_annotations(path, release="k400")


def test_malformed_countix_and_ava_rows(tmp_path: Path) -> None:
    countix = corrupt(tmp_path, "countix_train.csv", 3, b",8\n", b",-8\n")
    with pytest.raises(
        AnnotationError, match=r"countix_train.csv:4: count must be a whole number > 0"
    ):
        read_annotations(countix, split="train")
    ava = corrupt(tmp_path, "ava_kinetics_test.csv", 4, b",", b",nan,")
    with pytest.raises(AnnotationError, match=r"ava_kinetics_test.csv:5: expected 2 columns"):
        read_annotations(ava, split="test")
    ava = corrupt(tmp_path, "ava_kinetics_test.csv", 4, b",", b",-")
    with pytest.raises(
        AnnotationError, match=r"ava_kinetics_test.csv:5: timestamp must be a number"
    ):
        read_annotations(ava, split="test")


def test_malformed_json_entry_names_its_line(tmp_path: Path) -> None:
    text = (DATA / "k600_val_deepmind.json").read_text()
    path = tmp_path / "val.json"
    path.write_text(text.replace("4.0, ", "4.5, ", 1))
    with pytest.raises(AnnotationError, match=r"val.json:14: entry '--33Lscn6sk': segment must be"):
        read_annotations(path, release="k600")
    path.write_text(text[:-3])
    with pytest.raises(AnnotationError, match=r"val.json:\d+: not valid JSON"):
        read_annotations(path, release="k600")


def test_malformed_listing_entry(tmp_path: Path) -> None:
    lines = (DATA / "k600_val_listing.txt").read_bytes().splitlines(keepends=True)
    lines[6] = b"OALI_5D8pV0_000174.mp4\n"
    path = write_variant(tmp_path, "val.txt", lines)
    with pytest.raises(AnnotationError, match=r"val.txt:7: expected a clip file name"):
        read_annotations(path, release="k600")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"id,name\n0,abseiling\n", r":1: expected a Kinetics CSV header"),
        (b"label,youtube_id,start,end\n", r":1: expected a header of label,youtube_id"),
        (b"https://s3.amazonaws.com/kinetics/400/val/part_0.tar.gz\n", r":1: expected a Kinetics"),
        (b'["abseiling", "air drumming"]', r":1: expected a JSON object keyed by youtube id"),
        (b"\xff\xfe\x00l\x00a\x00b\x00e\x00l", r"is not UTF-8 text"),
    ],
)
def test_unknown_formats_are_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "annotations.csv"
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=message):
        read_annotations(path, release="k400", split="val")


def test_archives_and_missing_files(tmp_path: Path) -> None:
    packed = tmp_path / "kinetics700.tar.gz"
    packed.write_bytes(gzip.compress((DATA / "k700_val.csv").read_bytes()))
    with pytest.raises(AnnotationError, match="is a gzip/tar archive"):
        read_annotations(packed, release="k700")
    with pytest.raises(AnnotationError, match="cannot read annotation file"):
        read_annotations(tmp_path / "absent.csv", release="k700")


def test_blank_lines_hold_no_rows(tmp_path: Path) -> None:
    lines = (DATA / "k600_val.csv").read_bytes().splitlines(keepends=True)
    path = write_variant(tmp_path, "v.csv", [*lines[:5], b"\n", *lines[5:], b"\n"])
    assert read_annotations(path, release="k600") == read_annotations(
        DATA / "k600_val.csv", release="k600"
    )


def test_not_utf8_and_foreign_labels_name_the_line(tmp_path) -> None:
    """Both used to name the file only: at 650k rows that leaves the user to search for it."""
    from kinetix.catalog.catalog import Catalog
    from kinetix.catalog.labels import LabelRegistry

    head = b"label,youtube_id,time_start,time_end,split\n"
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(head + b"abseiling,abcdefghijk,0,10,val\nab\xe9seiling,abcdefghijl,0,10,val\n")
    with pytest.raises(AnnotationError, match=r"latin1\.csv:3: is not UTF-8"):
        read_annotations(bad, release="k400", split="val")
    other = tmp_path / "other.csv"
    rows = b"abseiling,abcdefghijk,0,10,val\n" * 3 + b"flying kites,abcdefghijl,0,10,val\n"
    other.write_bytes(head + rows)
    clips = read_annotations(other, release="k400", split="val")
    with pytest.raises(AnnotationError, match=r"other\.csv:5: labels that are not k400 classes"):
        Catalog("k400", "val", clips, LabelRegistry.for_release("k400"), other)
