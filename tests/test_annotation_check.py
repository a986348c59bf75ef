"""``kinetix annotations stats --file``: the check streams the file (issue 14, defect 12).

Rows are read one at a time and counted with an 8-byte hash each, so memory does not grow
with the rows kept; errors keep their file:line, now also for a non-UTF-8 zip member and for
labels that are not classes in a listing, a JSON file or a compressed zip.
"""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from kinetix.catalog import parse
from kinetix.catalog.catalog import file_stats
from kinetix.catalog.fetch import read_catalog
from kinetix.catalog.parse import RowRefused, read_annotations, stream_annotations
from kinetix.cli.main import main
from kinetix.errors import AnnotationError

HEAD = "label,youtube_id,time_start,time_end,split,is_cc\n"
REAL = [
    ("k400/val.csv", "k400", "val"),
    ("k600/val.txt", "k600", "val"),
    ("k600/deepmind_zip/kinetics_600_val.zip", "k600", "val"),
    ("k700/kinetics-700_val.csv", "k700", "val"),
    ("k700_2020/kinetics-700_2020_test.csv", "k700-2020", "test"),
]


def naive_stats(clips: list) -> dict[str, object]:
    ids = Counter(c.youtube_id for c in clips)
    keys = Counter((c.youtube_id, c.time_start, c.time_end) for c in clips)
    labels = Counter(c.label for c in clips if c.label is not None)
    return {
        "rows": len(clips),
        "labels": len(labels),
        "unlabeled": sum(c.label is None for c in clips),
        "duplicate_youtube_ids": sum(n > 1 for n in ids.values()),
        "duplicate_keys": sum(n > 1 for n in keys.values()),
        "short_clips": sum(c.time_end - c.time_start < 10 for c in clips),
    }


@pytest.mark.parametrize(("name", "release", "split"), REAL)
def test_streamed_stats_match_the_rows_on_real_files(
    shared_kinetics: Path, name: str, release: str, split: str
) -> None:
    path = shared_kinetics / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    stats = file_stats(release, split, path)
    clips = read_annotations(path, release=release, split=split)
    got = stats.as_dict()
    assert {k: got[k] for k in naive_stats(clips)} == naive_stats(clips)
    assert stats == read_catalog(release, split, path).stats()


def generated(tmp_path: Path, rows: int, *, dup_ids: int = 0, dup_keys: int = 0) -> Path:
    """``rows`` unique rows; then ``dup_ids`` new segments of earlier videos and ``dup_keys``
    exact repeats of earlier rows (each repeated once)."""
    path = tmp_path / f"gen{rows}.csv"
    with path.open("w") as f:
        f.write(HEAD)
        for i in range(rows):
            f.write(f'"air drumming",{i:011d},0,10,val,0\n')
        for i in range(dup_ids):
            f.write(f"abseiling,{i:011d},20,30,val,1\n")
        for i in range(dup_keys):
            f.write(f"abseiling,{rows - 1 - i:011d},0,10,val,1\n")
    return path


def test_duplicates_are_counted_exactly(tmp_path: Path) -> None:
    stats = file_stats("k400", "val", generated(tmp_path, 5000, dup_ids=70, dup_keys=30))
    assert stats.rows == 5100 and stats.labels == 2
    # a video with a second segment, or with the same key twice, is a duplicate youtube id
    assert (stats.duplicate_youtube_ids, stats.duplicate_keys) == (100, 30)
    assert (stats.clips_per_class_min, stats.clips_per_class_max) == (100, 5000)


def test_rows_are_handed_over_one_at_a_time(tmp_path: Path) -> None:
    """Every row before a bad one reaches the callback before the error is raised."""
    path = tmp_path / "late.csv"
    path.write_text(HEAD + "abseiling,abcdefghijk,0,10,val,0\n" * 4 + "abseiling,bad,0,10,val,0\n")
    seen: list[str] = []
    with pytest.raises(AnnotationError, match=r"late\.csv:6: youtube_id must be 11"):
        stream_annotations(path, lambda c: seen.append(c.key), release="k400", split="val")
    assert len(seen) == 4


def test_a_refused_row_is_reported_at_its_line(tmp_path: Path) -> None:
    path = generated(tmp_path, 10)

    def refuse(clip) -> None:
        if clip.youtube_id == "00000000007":
            raise RowRefused("not wanted")

    with pytest.raises(AnnotationError, match=r"gen10\.csv:9: not wanted"):
        stream_annotations(path, refuse, release="k400", split="val")


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_rows(tmp_path: Path, monkeypatch) -> None:
    """Each extra row costs about its 16 bytes of hashes, far below a kept Clip's ~300.

    Every row has its own times, so the parser's per-value interning must stop at its bound
    (lowered here from 65,536 so that two small files are both past it). Memory, not time:
    tracemalloc counts Python and numpy allocations exactly.
    """
    monkeypatch.setattr(parse, "_INTERNED_LIMIT", 1000)

    def spread(rows: int) -> Path:
        path = tmp_path / f"spread{rows}.csv"
        with path.open("w") as f:
            f.write(HEAD)
            for i in range(rows):
                f.write(f"abseiling,{i % 5000:011d},{i * 10},{i * 10 + 10},val,0\n")
        return path

    small, large = spread(30_000), spread(120_000)
    streamed = _peak(lambda: file_stats("k400", "val", large)) - _peak(
        lambda: file_stats("k400", "val", small)
    )
    held = _peak(lambda: read_catalog("k400", "val", large).stats()) - _peak(
        lambda: read_catalog("k400", "val", small).stats()
    )
    assert streamed / 90_000 < 40, f"{streamed / 90_000:.0f} bytes per extra row"
    assert held > 4 * streamed


def test_not_utf8_in_a_zip_member_names_the_line(tmp_path: Path) -> None:
    """The line used to be missing for zip members (only plain files were scanned again)."""
    archive = tmp_path / "kinetics_600_val.zip"
    body = HEAD + "abseiling,abcdefghijk,0,10,val,0\n" * 3
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "kinetics_600_val.csv", body.encode() + b"ab\xe9seiling,abcdefghijl,0,10,val,0\n"
        )
    with pytest.raises(AnnotationError, match=r"kinetics_600_val\.csv:5: is not UTF-8"):
        file_stats("k600", "val", archive)


def _listing(tmp_path: Path) -> Path:
    path = tmp_path / "val.txt"
    path.write_text(
        "val:\nabseiling\nflying kites\n\nval/abseiling:\nabcdefghijk_000000_000010.mp4\n\n"
        "val/flying kites:\nabcdefghijl_000000_000010.mp4\n"
    )
    return path


def _json(tmp_path: Path) -> Path:
    entry = {"annotations": {"label": "abseiling", "segment": [0.0, 10.0]}, "subset": "validate"}
    other = {"annotations": {"label": "flying kites", "segment": [0.0, 10.0]}, "subset": "val"}
    path = tmp_path / "val.json"
    path.write_text(json.dumps({"abcdefghijk": entry, "abcdefghijl": other}, indent=1))
    return path


def _deflated_zip(tmp_path: Path) -> Path:
    path = tmp_path / "kinetics_400_val.zip"
    body = HEAD + "abseiling,abcdefghijk,0,10,val,0\n" * 3 + "flying kites,abcdefghijl,0,10,val,0\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("kinetics_400_val.csv", body)
    return path


@pytest.mark.parametrize(
    ("make", "line"), [(_listing, 9), (_json, 12), (_deflated_zip, 5)], ids=["ls", "json", "zip"]
)
def test_label_not_a_class_names_the_line_in_every_format(tmp_path: Path, make, line) -> None:
    """'flying kites' is no k400 class; the line was missing (or wrong) outside plain CSVs."""
    path = make(tmp_path)
    for check in (
        lambda: file_stats("k400", "val", path),
        lambda: read_catalog("k400", "val", path),
    ):
        with pytest.raises(AnnotationError) as caught:
            check()
        assert caught.value.line == line
        assert "labels that are not k400 classes: 'flying kites' (1 rows" in str(caught.value)


def test_cli_check_of_a_bad_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _deflated_zip(tmp_path)
    code = main(["annotations", "stats", "k400", "--split", "val", "--file", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == (
        f"kinetix: error: {path}:5: labels that are not k400 classes: 'flying kites' (1 rows; "
        "the line is the first shown's); is this a file of another release?\n"
    )
    good = generated(tmp_path, 300, dup_keys=2)
    assert (
        main(["annotations", "stats", "k400", "--split", "val", "--file", str(good), "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["duplicate_keys"], report["file"]) == (302, 2, str(good))
