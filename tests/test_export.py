"""Exports parse the way mmaction2, PaddleVideo, SlowFast, torchvision and webdataset read them."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from _roots import RootClip, build_frames_root, build_videos_root, clips

from kinetix.catalog.labels import LabelRegistry
from kinetix.cli.main import main
from kinetix.errors import ConfigError
from kinetix.export import ExportConfig, ShardSize, export_root
from kinetix.store.layout import LabelStyle, manifest_path
from kinetix.store.manifest import Manifest

K400 = LabelRegistry.for_release("k400")
LABELS = ["abseiling", "abseiling", "air drumming", "massaging person's head",
          "petting animal (not cat)"]  # fmt: skip
GOOD = clips("train", LABELS)
BAD, UNVERIFIED, MISSING = clips("train", ["abseiling"] * 3, start=10)
TEST = clips("test", [None, None], start=20)


def _items() -> list[RootClip]:
    return [
        *(RootClip(c, store_index=c.label != "air drumming") for c in GOOD),
        RootClip(BAD, verify="bad"),
        RootClip(UNVERIFIED, verify=None),
        RootClip(MISSING, state="missing", verify=None),
        *(RootClip(c) for c in TEST),
    ]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Folder names without spaces (--layout underscore), as whitespace-split lists need."""
    return build_videos_root(
        tmp_path_factory.mktemp("under"), _items(), layout=LabelStyle.UNDERSCORE
    )


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    """The default layout: folder names are the labels, spaces and all."""
    return build_videos_root(tmp_path_factory.mktemp("raw"), _items())


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory, root) -> Path:
    return build_frames_root(tmp_path_factory.mktemp("frames"), root)


def _expected(split: str) -> dict[str, int]:
    """Clip key -> class index of what every export of ``split`` must list."""
    chosen = GOOD if split == "train" else TEST
    return {c.key: (-1 if c.label is None else K400.index(c.label)) for c in chosen}


def _key(path: str) -> str:
    return Path(path).name.removesuffix(".mp4")


# --- the consumers' own parsing, reimplemented from their loaders -----------------------------
def mmaction_videos(ann_file: Path, prefix: Path) -> list[tuple[Path, int]]:
    """mmaction2 ``VideoDataset.load_data_list``: ``filename, label = line.strip().split()``."""
    out = []
    for line in ann_file.read_text().splitlines():
        filename, label = line.strip().split()
        out.append((prefix / filename, int(label)))
    return out


def mmaction_rawframes(ann_file: Path, prefix: Path) -> list[tuple[Path, int, int]]:
    """mmaction2 ``RawframeDataset``: ``frame_dir total_frames label`` split on whitespace."""
    out = []
    for line in ann_file.read_text().splitlines():
        split = line.strip().split()
        labels = [int(x) for x in split[2:]]
        assert len(labels) == 1, f"missing label in line: {line}"
        out.append((prefix / split[0], int(split[1]), labels[0]))
    return out


def mmaction_json(ann_file: Path, prefix: Path) -> list[dict]:
    """mmaction2 ``load_json_annotations``: a list of dicts; one-element label lists."""
    infos = json.loads(ann_file.read_text())
    path_key = "frame_dir" if "frame_dir" in infos[0] else "filename"
    for info in infos:
        info[path_key] = prefix / info[path_key]
        assert len(info["label"]) == 1
        info["label"] = info["label"][0]
    return infos


def paddle_videos(file_path: Path, prefix: Path) -> list[tuple[Path, int]]:
    """PaddleVideo ``VideoDataset.load_file``: two fields, else a fake label for inference."""
    out = []
    for line in file_path.read_text().splitlines():
        filename, labels = line.strip().split()
        out.append((prefix / filename, int(labels)))
    return out


def paddle_frames(file_path: Path, prefix: Path) -> list[tuple[Path, int, int]]:
    """PaddleVideo ``FrameDataset.load_file``: ``frame_dir, frames_len, labels = line_split``."""
    out = []
    for line in file_path.read_text().splitlines():
        frame_dir, frames_len, labels = line.strip().split()
        out.append((prefix / frame_dir, int(frames_len), int(labels)))
    return out


def slowfast_csv(path: Path, prefix: Path) -> list[tuple[Path, int]]:
    """SlowFast ``Kinetics._construct_loader``: exactly one ``PATH_LABEL_SEPARATOR`` (a space)."""
    out = []
    for path_label in path.read_text().splitlines():
        assert len(path_label.split(" ")) == 2
        p, label = path_label.split(" ")
        out.append((prefix / p, int(label)))
    return out


def pytorchvideo_csv(path: Path, prefix: Path) -> list[tuple[Path, int]]:
    """pytorchvideo ``LabeledVideoPaths.from_csv``: ``rsplit(None, 1)``; no label means -1."""
    out = []
    for path_label in path.read_text().splitlines():
        parts = path_label.rsplit(None, 1)
        file_path, label = (parts[0], -1) if len(parts) == 1 else parts
        out.append((prefix / file_path, int(label)))
    return out


def torchvision_folder(label: str) -> str:
    """``torchvision.datasets.Kinetics._make_ds_structure``'s folder name of a label."""
    return label.replace(" ", "_").replace("'", "").replace("(", "").replace(")", "")


# --- lists ---------------------------------------------------------------------------------------
def test_mmaction_video_lists_parse_as_mmaction2_reads_them(root, tmp_path) -> None:
    report = export_root(root, ExportConfig("mmaction", out=tmp_path))
    for split in ("train", "test"):
        ann = tmp_path / f"kinetics400_{split}_list_videos.txt"
        entries = mmaction_videos(ann, root / split)
        assert {_key(str(p)): label for p, label in entries} == _expected(split)
        assert all(p.is_file() for p, _ in entries)
    assert (
        "abseiling/vid000-x_Y_000000_000010.mp4 0"
        in (tmp_path / "kinetics400_train_list_videos.txt").read_text().splitlines()
    )
    train = next(s for s in report.splits if s.split == "train")
    assert train.written == len(GOOD)
    assert dict(train.left_out) == {"verified bad": 1, "not verified": 1, "missing": 1}
    assert any("--include-unverified" in h for h in report.hints)
    assert not list(tmp_path.glob(".*.tmp"))


def test_decord_opens_every_listed_clip(root, tmp_path) -> None:
    decord = pytest.importorskip("decord")
    export_root(root, ExportConfig("mmaction", out=tmp_path, splits=("train",)))
    for path, _ in mmaction_videos(tmp_path / "kinetics400_train_list_videos.txt", root / "train"):
        assert len(decord.VideoReader(str(path))) == 50


def test_mmaction_json_lists_for_videos_and_rawframes(root, frames_root, tmp_path) -> None:
    export_root(root, ExportConfig("mmaction-json", out=tmp_path / "v", splits=("train",)))
    infos = mmaction_json(tmp_path / "v/kinetics400_train_list_videos.json", root / "train")
    assert {_key(str(i["filename"])): i["label"] for i in infos} == _expected("train")

    export_root(frames_root, ExportConfig("mmaction-json", out=tmp_path / "f", splits=("train",)))
    infos = mmaction_json(
        tmp_path / "f/kinetics400_train_list_rawframes.json", frames_root / "train"
    )
    assert {Path(i["frame_dir"]).name: i["label"] for i in infos} == _expected("train")
    for info in infos:
        assert info["total_frames"] == 50
        assert (info["frame_dir"] / "img_00050.jpg").is_file()


def test_rawframe_lists_for_mmaction2_and_paddlevideo(frames_root, tmp_path) -> None:
    export_root(frames_root, ExportConfig("mmaction", out=tmp_path / "mm"))
    entries = mmaction_rawframes(
        tmp_path / "mm/kinetics400_train_list_rawframes.txt", frames_root / "train"
    )
    assert {p.name: label for p, _, label in entries} == _expected("train")
    for frame_dir, total, _ in entries:  # mmaction2 reads img_{:05} from 1 to total_frames
        assert (frame_dir / "img_00001.jpg").is_file()
        assert (frame_dir / f"img_{total:05d}.jpg").is_file()
        assert not (frame_dir / f"img_{total + 1:05d}.jpg").exists()

    # PaddleVideo keeps ".mp4" in frame folder names; the link dir makes them exist
    links = tmp_path / "links"
    report = export_root(frames_root, ExportConfig("paddle", out=tmp_path / "pd", link_dir=links))
    entries = paddle_frames(tmp_path / "pd/train_frames.list", links / "train")
    assert {p.name.removesuffix(".mp4"): label for p, _, label in entries} == _expected("train")
    for frame_dir, total, _ in entries:
        assert frame_dir.name.endswith(".mp4") and frame_dir.is_dir()
        assert (frame_dir / f"img_{total:05d}.jpg").is_file()
    assert not any("--link-dir" in h for h in report.hints)
    without = export_root(frames_root, ExportConfig("paddle", out=tmp_path / "pd2"))
    assert any("--link-dir" in h for h in without.hints)


def test_paddle_and_slowfast_lists(root, tmp_path) -> None:
    export_root(root, ExportConfig("paddle", out=tmp_path / "pd"))
    entries = paddle_videos(tmp_path / "pd/train.list", root / "train")
    assert {_key(str(p)): label for p, label in entries} == _expected("train")
    assert all(p.is_file() for p, _ in entries)

    report = export_root(root, ExportConfig("slowfast", out=tmp_path / "sf"))
    for split in ("train", "test"):  # SlowFast reads {mode}.csv with one PATH_PREFIX
        for parse in (slowfast_csv, pytorchvideo_csv):
            entries = parse(tmp_path / f"sf/{split}.csv", root)
            assert {_key(str(p)): label for p, label in entries} == _expected(split)
            assert all(p.is_file() for p, _ in entries)
    assert any(f"DATA.PATH_PREFIX {root}" in h for h in report.hints)


def test_absolute_paths(root, tmp_path) -> None:
    export_root(root, ExportConfig("slowfast", out=tmp_path, splits=("train",), absolute=True))
    entries = slowfast_csv(tmp_path / "train.csv", Path("/unused"))
    assert all(p.is_absolute() and p.is_file() for p, _ in entries)


def test_whitespace_paths_are_refused_before_anything_is_written(raw_root, tmp_path) -> None:
    with pytest.raises(ConfigError, match="--link-dir"):
        export_root(raw_root, ExportConfig("mmaction", out=tmp_path / "lists"))
    assert not (tmp_path / "lists").exists() or not list((tmp_path / "lists").iterdir())

    links = tmp_path / "links"
    export_root(raw_root, ExportConfig("mmaction", out=tmp_path / "lists", link_dir=links))
    entries = mmaction_videos(tmp_path / "lists/kinetics400_train_list_videos.txt", links / "train")
    assert {_key(str(p)): label for p, label in entries} == _expected("train")
    for path, _ in entries:
        assert path.is_symlink() and path.resolve().is_file()
        assert path.resolve().parent.name in LABELS  # the real folders keep their spaces


# --- torchvision tree ------------------------------------------------------------------------
def test_torchvision_tree_links_with_torchvisions_names(raw_root, tmp_path) -> None:
    out = tmp_path / "tv"
    export_root(raw_root, ExportConfig("torchvision", out=out))
    for c in GOOD:
        link = out / "train" / torchvision_folder(c.label) / c.filename
        assert link.is_symlink(), link
        assert link.resolve() == (raw_root / "train" / c.label / c.filename).resolve()
    assert len(list((out / "test/_unlabeled").iterdir())) == len(TEST)
    assert not list(out.glob("train/*/" + BAD.filename))

    # rerunning changes nothing; a clip that turns bad loses its link
    first = {p: os.readlink(p) for p in out.rglob("*.mp4")}
    export_root(raw_root, ExportConfig("torchvision", out=out))
    assert {p: os.readlink(p) for p in out.rglob("*.mp4")} == first
    with Manifest(manifest_path(raw_root)) as m:
        m.update("k400", "train", GOOD[0].key, verify="bad")
    try:
        report = export_root(raw_root, ExportConfig("torchvision", out=out))
        assert not (out / "train/abseiling" / GOOD[0].filename).exists()
        assert sum(s.written for s in report.splits if s.split == "train") == len(GOOD) - 1
    finally:
        with Manifest(manifest_path(raw_root)) as m:
            m.update("k400", "train", GOOD[0].key, verify="good")


def test_hardlinks_share_the_file(root, tmp_path) -> None:
    out = tmp_path / "tv"
    export_root(root, ExportConfig("torchvision", out=out, splits=("train",), hardlink=True))
    link = out / "train/massaging_persons_head" / GOOD[3].filename
    assert not link.is_symlink()
    assert link.samefile(root / "train/massaging_person's_head" / GOOD[3].filename)


# --- selection and tables ----------------------------------------------------------------------
def test_include_unverified_adds_unverified_never_bad(root, tmp_path) -> None:
    export_root(root, ExportConfig("csv", out=tmp_path, include_unverified=True))
    with open(tmp_path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = {r["key"] for r in rows}
    assert UNVERIFIED.key in keys
    assert BAD.key not in keys and MISSING.key not in keys
    by_key = {r["key"]: r for r in rows}
    # stored NULL, filled in from the label registry
    assert by_key[GOOD[2].key]["label_index"] == str(K400.index("air drumming"))
    assert by_key[TEST[0].key]["label_index"] == "-1" and by_key[TEST[0].key]["label"] == ""


def test_parquet_table(root, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    export_root(root, ExportConfig("parquet", out=tmp_path))
    table = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert {r["key"]: r["label_index"] for r in table} == {
        **_expected("train"),
        **_expected("test"),
    }
    assert all(r["state"] == "present" and r["verify"] == "good" for r in table)
    assert table[0]["num_frames"] == 50


# --- webdataset ----------------------------------------------------------------------------------
def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.tar")}


def test_webdataset_shards_stream_through_webdataset(root, tmp_path) -> None:
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "wds"
    report = export_root(root, ExportConfig("webdataset", out=out, shard_size="2"))
    train = next(s for s in report.splits if s.split == "train")
    assert sorted(p.name for p in out.glob("train-*.tar")) == [
        "train-000000.tar", "train-000001.tar", "train-000002.tar",
    ]  # fmt: skip
    assert str(train.output).endswith("train-{000000..000002}.tar")
    samples = list(wds.WebDataset(str(train.output), shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == [c.key for c in GOOD]  # manifest order
    for s, c in zip(samples, GOOD):
        meta = json.loads(s["json"])
        assert int(s["cls"]) == meta["label_index"] == _expected("train")[c.key]
        assert meta["label"] == c.label and meta["youtube_id"] == c.youtube_id
        assert meta["num_frames"] == 50 and meta["fps"] == 25 and meta["source"] == "cvdf"
        assert s["mp4"] == (root / "train" / c.label.replace(" ", "_") / c.filename).read_bytes()
    index = json.loads((out / "train-index.json").read_text())
    assert index["clips"] == len(GOOD) and [s["clips"] for s in index["shards"]] == [2, 2, 1]
    assert not list(out.glob(".*.tmp"))

    # same rows, same order -> byte-identical shards; a shorter export drops stale shards
    first = _digest(out)
    export_root(root, ExportConfig("webdataset", out=out, shard_size="2"))
    assert _digest(out) == first
    export_root(root, ExportConfig("webdataset", out=out, splits=("train",)))
    assert sorted(p.name for p in out.glob("train-*.tar")) == ["train-000000.tar"]


def test_shard_size_in_bytes_and_seeded_shuffle(root, tmp_path) -> None:
    wds = pytest.importorskip("webdataset")
    report = export_root(
        root, ExportConfig("webdataset", out=tmp_path / "b", splits=("train",), shard_size="1KB")
    )
    assert len(list((tmp_path / "b").glob("train-*.tar"))) == len(GOOD)  # each clip is > 1 KB
    assert report.written == len(GOOD)

    def order(seed: int, name: str) -> list[str]:
        cfg = ExportConfig("webdataset", out=tmp_path / name, splits=("train",),
                           shuffle=True, seed=seed)  # fmt: skip
        pattern = str(export_root(root, cfg).splits[0].output)
        return [s["__key__"] for s in wds.WebDataset(pattern, shardshuffle=False)]

    a, b = order(0, "s0"), order(0, "s0again")
    assert a == b and sorted(a) == sorted(c.key for c in GOOD)
    assert a != [c.key for c in GOOD]
    assert order(1, "s1") != a


def test_shard_size_parsing() -> None:
    assert ShardSize.parse("1000") == ShardSize(clips=1000, bytes=None)
    assert ShardSize.parse("1GB") == ShardSize(clips=None, bytes=10**9)
    assert ShardSize.parse("500MiB") == ShardSize(clips=None, bytes=500 * 2**20)
    for bad in ("0", "1.5", "12 parsecs", "-3"):
        with pytest.raises(ConfigError, match="shard-size"):
            ShardSize.parse(bad)


def test_bad_requests_say_what_is_valid(root, frames_root, tmp_path) -> None:
    with pytest.raises(ConfigError, match="valid values are"):
        ExportConfig("tfrecord")
    with pytest.raises(ConfigError, match="its splits are test, train"):
        export_root(root, ExportConfig("csv", out=tmp_path, splits=("val",)))
    with pytest.raises(ConfigError, match="needs a videos root"):
        export_root(frames_root, ExportConfig("webdataset", out=tmp_path))
    with pytest.raises(ConfigError, match="reads videos"):
        export_root(frames_root, ExportConfig("slowfast", out=tmp_path))
    with pytest.raises(ConfigError, match="only applies to --format webdataset"):
        ExportConfig("csv", shuffle=True)


def test_cli_export_reports_what_was_left_out(root, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    assert (
        main(["export", str(root), "--format", "mmaction", "--out", str(out), "--split", "train"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"k400 train: {len(GOOD)} clips -> {out}/kinetics400_train_list_videos.txt" in printed
    assert "left out 3: 1 missing, 1 not verified, 1 verified bad" in printed
    assert "data_prefix=dict(video=" in printed
    assert main(["export", str(root), "--format", "csv", "--split", "nope"]) == 2
    assert "its splits are" in capsys.readouterr().err
