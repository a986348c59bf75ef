"""CountixDataset and AvaKineticsDataset: the frames they return are the clip frames the source rows
name (fast-trim lead-in included), boxes in pixels, multi-hot actions, DataLoader workers; and the
journey from `kinetix download ... --mirror URL` to a training batch for both sets."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from _downstream import FPS, Roots, build_roots

from kinetix.catalog.downstream import read_downstream
from kinetix.cli.main import main
from kinetix.data import AvaKineticsDataset, CountixDataset, collate_keyframes
from kinetix.errors import ConfigError
from kinetix.export import ExportConfig, export_root
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import frame_index
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, shared_kinetics: Path) -> Roots:
    return build_roots(tmp_path_factory.mktemp("downstream-data"), shared_kinetics)


def source_frame(roots: Roots, line: int, clip_frame: int) -> int:
    """What the index pattern shows for a clip frame: CVDF clips count their own frames, the
    YouTube source counts the video's (its clip starts at time_start + lead)."""
    if line == 2:
        return clip_frame
    return clip_frame + round((roots.clips.youtube.time_start + roots.lead) * FPS)


def test_countix_frames_over_the_span_start_at_the_rows_first_frame(roots: Roots) -> None:
    data = CountixDataset(roots.countix, "val", frames_per_clip=8, output="numpy")
    assert len(data) == 2 and sum(data.left_out.values()) == 3
    assert {r.reason for r in data.rejected} == {"count_not_positive", "span_outside_clip"}
    items = {int(data.lines[i]): data[i] for i in range(len(data))}
    exact, fast = items[2], items[3]
    # 3.2 s into a 25 fps exact cut: frame 80; to 7.5 s: frame 188 (exclusive)
    assert exact["span"].tolist() == [80, 188] and exact["count"] == 6
    lead = -roots.lead
    start = math.floor((3.2 + lead) * FPS + 1e-6)
    assert fast["span"].tolist() == [start, math.ceil((5.0 + lead) * FPS - 1e-6)]
    for line, item in items.items():
        first, end = item["span"].tolist()
        assert item["frames"].shape == (8, 48, 64, 3)
        assert item["in_span"].all()
        assert first <= item["indices"].min() < item["indices"].max() < end
        shown = [frame_index(f) for f in item["frames"]]
        assert shown == [source_frame(roots, line, int(k)) for k in item["indices"]]


def test_countix_first_frame_of_a_span_is_the_annotated_time(roots: Roots) -> None:
    # a sampler of one frame at the span's start: the frame showing time_start + 3.2 s
    class First:
        frames_per_clip, views = 1, 1

        def __call__(self, n: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
            return np.zeros((1, 1), dtype=np.int64)

    data = CountixDataset(roots.countix, "val", sampler=First(), output="numpy")
    for i in range(len(data)):
        line = int(data.lines[i])
        item = data[i]
        clip = roots.clips.cvdf if line == 2 else roots.clips.youtube
        video_frame = round((clip.time_start + 3.2) * FPS)  # the row's repetition_start
        expected = video_frame - (0 if line == 3 else clip.time_start * FPS)
        assert frame_index(item["frames"][0]) == expected


def test_countix_over_the_clip_skips_the_lead_in_and_marks_the_span(roots: Roots) -> None:
    data = CountixDataset(roots.countix, "val", frames_per_clip=10, over="clip", output="numpy")
    for i in range(len(data)):
        item = data[i]
        lead = 0 if data.lines[i] == 2 else round(-roots.lead * FPS)
        assert item["indices"].min() >= lead
        first, end = item["span"].tolist()
        assert item["in_span"].tolist() == [first <= k < end for k in item["indices"]]
        assert 0 < item["in_span"].sum() < 10
    with pytest.raises(ConfigError, match="valid values are span, clip"):
        CountixDataset(roots.countix, "val", over="video")


def test_ava_clip_is_centred_on_the_keyframe_with_pixel_boxes(roots: Roots) -> None:
    data = AvaKineticsDataset(
        roots.ava, "val", frames_per_clip=8, frame_stride=4, short_side=32, output="numpy"
    )
    assert len(data) == 2
    items = {data[i]["key"]: data[i] for i in range(len(data))}
    a, b = roots.clips.cvdf, roots.clips.youtube
    ia, ib = items[a.key], items[b.key]
    # the keyframe 4.0 s into the exact cut (frame 100) and 5.5 s past time_start in the
    # fast cut, its lead-in included
    assert ia["indices"][ia["keyframe"]] == 100
    kb = math.floor((5.5 - roots.lead) * FPS + 1e-6)
    assert ib["indices"][ib["keyframe"]] == kb
    assert frame_index(ib["frames"][ib["keyframe"]]) == source_frame(roots, 3, kb)
    assert ia["indices"].tolist() == list(range(100 - 16, 100 + 16, 4))
    # frames 64x48 scaled to a short side of 32: 42x32; boxes in those pixels
    assert ia["frames"].shape == (8, 32, 42, 3)
    pixels = [[0.1 * 42, 0.2 * 32, 0.5 * 42, 0.9 * 32], [0.5 * 42, 0.25 * 32, 0.75 * 42, 32]]
    np.testing.assert_allclose(ia["boxes"], pixels, rtol=1e-6)
    assert ia["boxes"].dtype == np.float32 and ia["boxes"].shape == (2, 4)
    assert ia["labels"].shape == (2, 80)
    assert [np.flatnonzero(row).tolist() for row in ia["labels"]] == [[11, 79], [0]]
    assert ia["persons"].tolist() == [0, 1]
    assert [np.flatnonzero(r).tolist() for r in ib["labels"]] == [[56]]
    assert ib["timestamp"] == b.time_start + 5.5


def test_both_load_in_dataloader_workers(roots: Roots) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    countix = CountixDataset(roots.countix, "val", frames_per_clip=4)
    batch = next(iter(DataLoader(countix, batch_size=2, num_workers=2)))
    assert batch["frames"].shape == (2, 4, 48, 64, 3) and batch["frames"].dtype == torch.uint8
    assert sorted(batch["count"].tolist()) == [3, 6]
    assert batch["span"].shape == (2, 2)
    ava = AvaKineticsDataset(roots.ava, "val", frames_per_clip=4, frame_stride=2)
    loader = DataLoader(ava, batch_size=2, num_workers=2, collate_fn=collate_keyframes)
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, 4, 48, 64, 3)
    assert sorted(len(b) for b in batch["boxes"]) == [1, 2]
    assert all(labels.shape[1] == 80 for labels in batch["labels"])


def test_loaders_refuse_a_plain_root_and_a_root_of_the_other_set(roots: Roots) -> None:
    with pytest.raises(ConfigError, match="holds countix rows, not ava-kinetics"):
        AvaKineticsDataset(roots.countix, "val")
    with pytest.raises(ConfigError, match="no countix split 'train'"):
        CountixDataset(roots.countix, "train")


# --- the journey: the mirror's own tarballs, downloaded and exported through the CLI -------


def test_countix_and_ava_from_download_to_a_training_batch(
    tmp_path: Path,
    downstream_mirror: MirrorIndex,
    downstream_server: MirrorServer,
    shared_kinetics: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))
    url = downstream_server.url
    for release, root in (("countix", tmp_path / "countix"), ("ava-kinetics", tmp_path / "ava")):
        argv = ["download", release, "--split", "val", "--root", str(root), "--mirror", url]
        assert main([*argv, "--no-progress"]) == 0
    for name in ("countix", "ava"):
        assert main(["export", str(tmp_path / name), "--format", name]) == 0
    printed = capsys.readouterr().out
    assert "mmaction2 val: dataset=dict(type='AVAKineticsDataset'" in printed

    # Countix: the mirror's real val rows whose clips its shards hold
    source = read_downstream(shared_kinetics / "countix/countix_val.csv", "countix", "val")
    wanted = set(downstream_mirror.downstream["countix"]["clips"]["val"])
    keys = {r.line: f"{r.youtube_id}_{r.time_start:06d}_{r.time_end:06d}" for r in source.rows}
    rows = {r.line: r for r in source.rows if keys[r.line] in wanted}
    countix = CountixDataset(tmp_path / "countix", "val", frames_per_clip=8)
    assert len(countix) == len(rows) == 2
    batch = next(iter(DataLoader(countix, batch_size=2, num_workers=2, shuffle=True)))
    assert batch["frames"].shape == (2, 8, 80, 64, 3) and batch["frames"].dtype == torch.uint8
    for key, count, span in zip(batch["key"], batch["count"], batch["span"]):
        (row,) = [r for r in rows.values() if key.startswith(r.youtube_id)]
        assert count == row.count
        # the mirror's CVDF clips are exact cuts at 10 fps
        assert span[0] == math.floor((row.repetition_start - row.time_start) * 10 + 1e-6)

    # AVA-Kinetics: the generated val rows' keyframes, boxes and actions
    ava = AvaKineticsDataset(tmp_path / "ava", "val", frames_per_clip=8, frame_stride=2)
    assert len(ava) == 2
    loader = DataLoader(ava, batch_size=2, num_workers=2, collate_fn=collate_keyframes)
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, 8, 80, 64, 3)
    for boxes, labels in zip(batch["boxes"], batch["labels"]):
        assert boxes.shape[0] == labels.shape[0] > 0 and labels.shape[1] == 80
        assert ((boxes[:, 0] >= 0) & (boxes[:, 2] <= 64) & (boxes[:, 3] <= 80)).all()
        assert (labels.sum(axis=1) >= 1).all()
    ann = tmp_path / "ava/exports/ava/annotations/kinetics_val.csv"
    actions = sum(int(labels.sum()) for labels in batch["labels"])
    assert actions == len(ann.read_text().splitlines())  # one CSV line per box and action


def test_a_clip_never_verified_is_left_out_unless_asked_for(roots: Roots, tmp_path: Path) -> None:
    root = tmp_path / "countix"
    shutil.copytree(roots.countix, root)
    with Manifest(manifest_path(root)) as m:
        m.update("k700-2020", "val", roots.clips.youtube.key, verify=None)
    data = CountixDataset(root, "val", frames_per_clip=2, output="numpy")
    assert len(data) == 1 and data.left_out["not verified"] == 1
    assert len(CountixDataset(root, "val", include_unverified=True, output="numpy")) == 2
    report = export_root(root, ExportConfig("countix", out=tmp_path / "out"))
    assert report.splits[0].written == 1 and report.splits[0].left_out["not verified"] == 1
    (row,) = read_rows(tmp_path / "out/countix_val_not_present.csv", "not verified")
    assert row["key"] == roots.clips.youtube.key and row["line"] == "3"


def read_rows(path: Path, state: str) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["state"] == state]
