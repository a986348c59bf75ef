"""`kinetix export --format countix|ava` of roots `kinetix download countix|ava-kinetics` made on
the synthetic mirror: numbers checked against the source rows, and the ava export read the way
mmaction2's AVAKineticsDataset reads it."""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from _downstream import FPS, NO_SUCH_ID, Roots, build_roots

from kinetix.catalog.downstream import AvaRow, ava_actions
from kinetix.catalog.relative import keyframe_on_clip
from kinetix.cli.main import main
from kinetix.data import AvaKineticsDataset
from kinetix.data.decoders import JpegFolderReader
from kinetix.data.downstream import load_downstream
from kinetix.errors import ConfigError
from kinetix.export import ExportConfig, export_root
from kinetix.export.ava import AvaFramesWriter, frame_window
from kinetix.store.downstream import downstream_rows
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import frame_index
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, shared_kinetics: Path) -> Roots:
    return build_roots(tmp_path_factory.mktemp("downstream-export"), shared_kinetics)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def export_cli(root: Path, fmt: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``kinetix export ROOT --format FMT --out OUT``; what it printed."""
    assert main(["export", str(root), "--format", fmt, "--out", str(out)]) == 0
    return capsys.readouterr().out


def test_countix_table_has_spans_in_clip_seconds_and_frames(
    roots: Roots, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "countix"
    printed = export_cli(roots.countix, "countix", out, capsys)
    assert "countix val: 2 rows" in printed
    assert "left out 3: 1 count_not_positive" not in printed  # reasons carry their kind
    assert "1 no_clip, 1 rejected:count_not_positive, 1 rejected:span_outside_clip" in printed
    rows = {int(r["line"]): r for r in read_csv(out / "countix_val.csv")}
    assert set(rows) == {2, 3}
    a, b = roots.clips.cvdf, roots.clips.youtube
    # an exact CVDF cut: 3.2 s into a 25 fps clip is frame 80; the end (7.5 s) is exclusive
    exact = rows[2]
    assert exact["path"] == f"val/{a.label}/{a.key}.mp4"
    assert (float(exact["start_seconds"]), float(exact["end_seconds"])) == (3.2, 7.5)
    assert (int(exact["start_frame"]), int(exact["end_frame"])) == (80, 188)
    assert (int(exact["count"]), exact["label"], float(exact["fps"])) == (6, a.label, FPS)
    # the fast-trimmed YouTube clip starts at the keyframe before time_start: its lead-in
    # moves the same 3.2 s to 3.2 - start_offset seconds into the file
    fast = rows[3]
    assert float(fast["start_offset"]) == roots.lead
    assert float(fast["start_seconds"]) == pytest.approx(3.2 - roots.lead)
    assert int(fast["start_frame"]) == math.floor((3.2 - roots.lead) * FPS + 1e-6)
    assert int(fast["end_frame"]) == math.ceil((5.0 - roots.lead) * FPS - 1e-6)
    # against the source rows: the span in video seconds is kept as it was
    assert float(fast["repetition_start"]) == pytest.approx(b.time_start + 3.2)
    # the Parquet table holds the same rows
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out / "countix_val.parquet").to_pylist()
    assert [(r["line"], r["start_frame"], r["end_frame"]) for r in table] == [
        (2, 80, 188), (3, int(fast["start_frame"]), int(fast["end_frame"])),
    ]  # fmt: skip
    assert (out / "DATASET_CARD.md").is_file()


def test_bad_rows_are_listed_with_their_line_and_never_clamped(
    roots: Roots, tmp_path: Path
) -> None:
    report = export_root(roots.countix, ExportConfig("countix", out=tmp_path))
    (split,) = report.splits
    assert split.written == 2
    rejected = {int(r["line"]): r for r in read_csv(tmp_path / "countix_val_rejected.csv")}
    assert {n: r["reason"] for n, r in rejected.items()} == {
        4: "count_not_positive", 5: "span_outside_clip",
    }  # fmt: skip
    assert rejected[5]["column"] == "repetition_end" and rejected[5]["row"].endswith(",4")
    # the row whose clip no root has is data: listed with its reason, not an error
    (missing,) = read_csv(tmp_path / "countix_val_not_present.csv")
    assert (missing["line"], missing["youtube_id"], missing["reason"]) == (
        "6", NO_SUCH_ID, "no_clip",
    )  # fmt: skip
    assert dict(split.left_out) == {
        "no_clip": 1, "rejected:count_not_positive": 1, "rejected:span_outside_clip": 1,
    }  # fmt: skip


def test_export_refuses_a_root_of_the_other_set(roots: Roots, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds ava-kinetics rows, not countix"):
        export_root(roots.ava, ExportConfig("countix", out=tmp_path))
    with pytest.raises(ConfigError, match="no ava-kinetics split 'train'"):
        export_root(roots.ava, ExportConfig("ava", out=tmp_path, splits=("train",)))


# --- what mmaction2's AVAKineticsDataset does with the files (mmaction/datasets/ava_dataset.py
# and SampleAVAFrames / RawFrameDecode, read and restated here) --------------------------


class MmactionKeyframe(NamedTuple):
    folder: Path
    timestamp: int
    start: int  # timestamp_start, from the folder name
    end: int
    boxes: list[tuple[float, ...]]
    labels: list[set[int]]
    entities: list[int]


def mmaction_records(ann_file: Path, prefix: Path) -> list[MmactionKeyframe]:
    """Lines split on ',', ``int()`` of the timestamp, label and entity; rows of one keyframe
    merged by equal box; ``{id}_{start}_{end}`` folder names give the shot."""
    by_key: dict[str, MmactionKeyframe] = {}
    for line in ann_file.read_text().splitlines():
        cells = line.strip().split(",")
        video_id, timestamp = cells[0], int(cells[1])
        box = tuple(map(float, cells[2:6]))
        label, entity = int(cells[6]), int(cells[7])
        parts = video_id.split("_")
        start, end = int(parts[-2]), int(parts[-1])
        key = f"{video_id},{timestamp:04d}"
        record = by_key.setdefault(
            key, MmactionKeyframe(prefix / video_id, timestamp, start, end, [], [], [])
        )
        if box in record.boxes:
            record.labels[record.boxes.index(box)].add(label)
        else:
            record.boxes.append(box)
            record.labels.append({label})
            record.entities.append(entity)
    return list(by_key.values())


def mmaction_frame_inds(record: MmactionKeyframe, clip_len: int, interval: int) -> np.ndarray:
    """SampleAVAFrames in test mode: a clip centred on fps * (timestamp - start) + start_index
    (0), clamped to the shot (1, (end - start) * fps + 1)."""
    centre = 30 * (record.timestamp - record.start)
    first = centre - (clip_len // 2) * interval
    inds = np.arange(first, centre + ((clip_len + 1) // 2) * interval, interval)
    return np.clip(inds, 1, (record.end - record.start) * 30)


def label_map(pbtxt: Path) -> dict[int, str]:
    """mmaction2's read_labelmap: '  name:' then '  id:' or '  label_id:' lines."""
    names: dict[int, str] = {}
    name = ""
    for line in pbtxt.read_text().splitlines(keepends=True):
        if line.startswith("  name:"):
            name = line.split('"')[1]
        elif line.startswith("  id:") or line.startswith("  label_id:"):
            names[int(line.strip().split(" ")[-1])] = name
    return names


def test_ava_export_is_what_mmaction2_reads(
    roots: Roots, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ava"
    printed = export_cli(roots.ava, "ava", out, capsys)
    ann_file = out / "annotations/kinetics_val.csv"
    label_file = out / "annotations/ava_action_list_v2.2.pbtxt"
    assert f"ann_file='{ann_file}'" in printed and f"label_file='{label_file}'" in printed
    assert f"data_prefix=dict(img='{out / 'rawframes'}')" in printed
    assert "type='AVAKineticsDataset'" in printed

    names = label_map(label_file)
    assert sorted(names) == list(range(1, 81)) and names[1] == ava_actions()[0]
    assert names[80] == "watch (a person)"

    found = mmaction_records(ann_file, out / "rawframes")
    records = {r.folder.name.rsplit("_", 2)[0]: r for r in found}
    a, b = roots.clips.cvdf, roots.clips.youtube
    assert set(records) == {a.youtube_id, b.youtube_id}  # the bad box and lost video are out
    ra, rb = records[a.youtube_id], records[b.youtube_id]
    # boxes stay normalised, labels are the file's 1..80, one box per person with its actions
    assert ra.boxes == [(0.1, 0.2, 0.5, 0.9), (0.5, 0.25, 0.75, 1.0)]
    assert ra.labels == [{12, 80}, {1}] and ra.entities == [0, 1]
    assert rb.boxes == [(0.0, 0.0, 1.0, 1.0)] and rb.labels == [{57}]
    assert all(0 <= v <= 1 for r in (ra, rb) for box in r.boxes for v in box)
    # the integer timestamp is the keyframe's second; the folder spans it
    assert (ra.timestamp, rb.timestamp) == (a.time_start + 4, b.time_start + 5)
    reader = JpegFolderReader()
    for record, keyframe, clip, lead in (
        (ra, a.time_start + 4.0, a, 0.0),
        (rb, b.time_start + 5.5, b, roots.lead),
    ):
        assert record.start <= record.timestamp < record.end
        count = (record.end - record.start) * 30
        files = sorted(p.name for p in record.folder.iterdir())
        assert files == [f"img_{k:05d}.jpg" for k in range(1, count + 1)]
        # mmaction2's keyframe image shows the keyframe: the clip frame at that time, counted
        # from the file's first frame (the lead-in included), even for 13.5 s
        inds = mmaction_frame_inds(record, clip_len=8, interval=8)
        images = reader.read(record.folder, inds - 1)  # reader indices are 0-based
        centre = images[len(inds) // 2]
        clip_frame = math.floor((keyframe - clip.time_start - lead) * FPS + 1e-6)
        # CVDF clips' pattern counts clip frames; a YouTube source counts video frames
        offset = 0 if clip is a else round((clip.time_start + lead) * FPS)
        assert frame_index(centre) == clip_frame + offset
        # every image shows the clip frame at its own 30 fps time
        for k, image in zip(inds, images):
            t = keyframe + (k - 30 * (record.timestamp - record.start)) / 30
            frame = math.floor((t - clip.time_start - lead) * FPS + 1e-6)
            assert frame_index(image) == frame + offset


def test_ava_export_rerun_decodes_nothing_again(roots: Roots, tmp_path: Path) -> None:
    export_root(roots.ava, ExportConfig("ava", out=tmp_path / "one"))
    # the same folders and CSV from two worker processes
    export_root(roots.ava, ExportConfig("ava", out=tmp_path, workers=2))
    csv_file = "annotations/kinetics_val.csv"
    assert (tmp_path / csv_file).read_text() == (tmp_path / "one" / csv_file).read_text()
    for folder in (tmp_path / "one/rawframes").iterdir():
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(p.name for p in (tmp_path / "rawframes" / folder.name).iterdir())
    folders = sorted((tmp_path / "rawframes").iterdir())
    stamps = {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()}
    export_root(roots.ava, ExportConfig("ava", out=tmp_path))
    assert {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()} == stamps
    assert not list((tmp_path / "rawframes").glob(".*.tmp"))


def test_frame_window_is_four_seconds_sliding_inside_the_clip() -> None:
    w = frame_window(13.5, 8, 18)
    assert (w.start, w.end, w.second, w.centre, w.count) == (11, 15, 13, 60, 120)
    assert w.folder("abcdefghijk") == "abcdefghijk_000011_000015"
    # near either end of the clip the window slides in rather than being cut short: every
    # folder is 120 images (mmaction2 takes each to be as long as the CSV's last one)
    assert (frame_window(9.2, 8, 18).start, frame_window(9.2, 8, 18).centre) == (8, 30)
    assert (frame_window(17.9, 8, 18).start, frame_window(17.9, 8, 18).centre) == (14, 90)
    # the keyframe's image must not be img_00000: a second before it at least
    assert frame_window(8.2, 8, 18).start == 7
    assert (frame_window(0.5, 0, 10).start, frame_window(0.5, 0, 10).end) == (0, 4)
    assert (frame_window(12.0, 10, 12).start, frame_window(12.0, 10, 12).end) == (9, 13)
    assert all(frame_window(t / 4, 0, 10).count == 120 for t in range(40))
    assert frame_window(13.5, 8, 18, shift=1).start == 12
    assert frame_window(13.5, 8, 18, shift=2).start == 12  # the keyframe a second inside


def test_a_clip_that_no_longer_decodes_leaves_its_keyframe_out(
    roots: Roots, tmp_path: Path
) -> None:
    root = tmp_path / "ava"
    shutil.copytree(roots.ava, root)
    clip = root / f"val/{roots.clips.cvdf.label}/{roots.clips.cvdf.key}.mp4"
    clip.write_bytes(b"not a video any more")
    report = export_root(root, ExportConfig("ava", out=tmp_path / "out"))
    (split,) = report.splits
    assert split.written == 1 and split.left_out["undecodable"] == 3  # its three rows
    lines = (tmp_path / "out/annotations/kinetics_val.csv").read_text().splitlines()
    assert lines and all(line.startswith(roots.clips.youtube.youtube_id) for line in lines)
    assert [p.name for p in (tmp_path / "out/rawframes").iterdir()] == [lines[0].split(",")[0]]


def test_ava_test_split_gets_frames_and_a_keyframe_list(
    tmp_path: Path,
    downstream_mirror: MirrorIndex,
    downstream_server: MirrorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    argv = ["download", "ava-kinetics", "--split", "test", "--root", str(root)]
    assert main([*argv, "--mirror", downstream_server.url, "--no-progress"]) == 0
    report = export_root(root, ExportConfig("ava", out=tmp_path / "out"))
    (split,) = report.splits
    wanted = downstream_mirror.downstream["ava-kinetics"]["clips"]["test"]
    with Manifest(manifest_path(root), readonly=True) as m:
        present = [r for r in downstream_rows(m, "test") if r.present]
    assert set(wanted) <= {r.key for r in present}
    assert split.written == len(present)  # test rows are one per keyframe
    keyframes = (tmp_path / "out/annotations/kinetics_test_keyframes.csv").read_text()
    folders = [line.split(",") for line in keyframes.splitlines()]
    assert all(len(f) == 2 and (tmp_path / "out/rawframes" / f[0]).is_dir() for f in folders)
    assert not (tmp_path / "out/annotations/kinetics_test.csv").exists()
    assert any("no boxes in this split" in hint for hint in report.hints)
    data = AvaKineticsDataset(root, "test", frames_per_clip=4, output="numpy")
    item = data[0]
    assert item["boxes"].shape == (0, 4) and item["labels"].shape == (0, 80)


def test_two_keyframes_of_one_second_get_two_folders(roots: Roots, tmp_path: Path) -> None:
    (first,) = [k for k in load_downstream(roots.ava, "val").items if k.lines == (1, 2, 3)]
    later = []
    for line, t in ((9, 0.5), (10, 0.25), (11, 0.75)):
        row = AvaRow(line, first.youtube_id, first.timestamp + t)
        on_clip = keyframe_on_clip(row, first.clip.timing)
        later.append(replace(first, timestamp=row.timestamp, lines=(line,), keyframe=on_clip))
    second = later[0]
    with AvaFramesWriter(tmp_path, "val") as writer:
        names = [writer.write(k, roots.ava) for k in (first, *later)]  # type: ignore[arg-type]
    # the same length, slid a second one way, then the other; a fourth has no name left
    spans = [tuple(map(int, n.rsplit("_", 2)[1:])) for n in names[:3] if n is not None]
    s0 = spans[0][0]
    assert spans == [(s0, s0 + 4), (s0 - 1, s0 + 3), (s0 + 1, s0 + 5)]
    assert names[3] is None and writer.crowded == [later[2]]
    written = {line.split(",")[0] for line in writer.path.read_text().splitlines()}
    assert written == set(names[:3]) and sorted(p.name for p in writer.frames.iterdir()) == sorted(
        written
    )
    reader = JpegFolderReader()
    for name, keyframe in zip(names, (first, second)):
        assert name is not None
        start = int(name.rsplit("_", 2)[1])
        centre = 30 * (int(keyframe.timestamp) - start)  # mmaction2's keyframe image
        (image,) = reader.read(tmp_path / "rawframes" / name, np.array([centre - 1]))
        assert frame_index(image) == keyframe.keyframe.frame  # a CVDF clip counts its frames
    assert frame_index(image) == first.keyframe.frame + FPS // 2  # 0.5 s later


def _recorded(root: Path) -> tuple[list[tuple[object, ...]], set[str], dict[str, str]]:
    with Manifest(manifest_path(root), readonly=True) as m:
        rows = [
            (r.split, r.line, r.youtube_id, r.key, r.state, r.reason, r.path, r.fps)
            for r in downstream_rows(m)
        ]
        keys = {c.key for c in m.clips()}
        meta = {k: m.get_meta(k) or "" for k in ("downstream", "downstream_split", "release")}
    return rows, keys, meta


@pytest.mark.parametrize("name", ["countix", "ava"])
def test_repair_brings_back_the_annotation_rows(
    name: str,
    roots: Roots,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = getattr(roots, name)
    root = tmp_path / name
    shutil.copytree(source, root)
    before = _recorded(root)
    fmt = "countix" if name == "countix" else "ava"
    table = "countix_val.csv" if name == "countix" else "annotations/kinetics_val.csv"
    export_root(root, ExportConfig(fmt, out=tmp_path / "before"))
    manifest_path(root).unlink()
    for suffix in ("-wal", "-shm"):
        manifest_path(root).with_name(manifest_path(root).name + suffix).unlink(missing_ok=True)
    # the annotation files come from the cache the download filled; nothing is fetched
    monkeypatch.setenv("KINETIX_CACHE", str(source.parent / "cache"))
    assert main(["repair", str(root), "--offline", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"annotation rows recorded again from the kept copy: {len(before[0])}" in out
    # every row with its clip and reason as before, and only the clips those rows need
    rows, keys, meta = _recorded(root)
    assert (keys, meta) == before[1:] and len(rows) == len(before[0])
    # except the fast-trimmed YouTube clip: its start offset lived only in the manifest, so
    # verify finds it longer than its span and quarantines it (a --retry-failed refetches it)
    fast = roots.clips.youtube
    assert [r for r in rows if r[3] != fast.key] == [r for r in before[0] if r[3] != fast.key]
    assert {r[4:6] for r in rows if r[3] == fast.key} == {("quarantined", "bad_duration")}
    assert main(["status", str(root)]) == 0
    assert f"val: {len(before[0])} annotation rows" in capsys.readouterr().out
    export_root(root, ExportConfig(fmt, out=tmp_path / "after"))
    lines = [(tmp_path / d / table).read_text().splitlines() for d in ("before", "after")]
    assert lines[1] == [line for line in lines[0] if fast.youtube_id not in line] != []


def test_a_keyframe_with_no_folder_name_left_is_counted_not_dropped(
    roots: Roots, tmp_path: Path
) -> None:
    from kinetix.export.downstream import _ava_split

    rows = load_downstream(roots.ava, "val")
    (first,) = [k for k in rows.items if k.lines == (1, 2, 3)]
    for line, t in ((9, 0.25), (10, 0.5), (11, 0.75)):  # three more in that second
        row = AvaRow(line, first.youtube_id, first.timestamp + t)
        on_clip = keyframe_on_clip(row, first.clip.timing)
        rows.items.append(  # type: ignore[arg-type]
            replace(first, timestamp=row.timestamp, lines=(line,), keyframe=on_clip)
        )
    report = _ava_split(roots.ava, ExportConfig("ava", out=tmp_path), rows, tmp_path, None)
    assert report.written == len(rows.items) - 1 and report.left_out["same_second"] == 1
