"""The synthetic mirror has CVDF's exact shapes: shard names, members, path lists, annotations."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import av
import pytest

from kinetix.catalog.releases import CVDF_BASE, get_release, join_url
from kinetix.cli.main import main
from kinetix.errors import ConfigError
from kinetix.synthetic import mirror as mirror_module
from kinetix.synthetic.media import frame_index
from kinetix.synthetic.mirror import (
    DEEP_PREFIX,
    REPLACEMENT_DIR,
    MirrorIndex,
    MirrorSpec,
    build_mirror,
    releases_for,
)
from kinetix.synthetic.rows import EXCERPTS_DIR, ROW_SOURCES

APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def members(path: Path) -> dict[str, bytes | None]:
    """name -> bytes (None for directories) of a tar or tar.gz, whatever its name says."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            if info.isdir():  # tarfile drops the trailing slash the archive has
                out[info.name + "/"] = None
                continue
            f = tar.extractfile(info)
            out[info.name] = f.read() if f is not None else None
    return out


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


# --- K400 ---------------------------------------------------------------------------------------


def test_k400_parts_are_class_mixed_with_cvdf_members(mirror: MirrorIndex) -> None:
    split = mirror.split("k400", "val")
    assert split.shards == tuple(f"400/val/part_{i}.tar.gz" for i in range(3))
    labels_per_part = []
    held: dict[str, bytes] = {}
    for relpath in split.shards[:-1]:  # the last one is the plain-tar anomaly
        path = mirror.path(relpath)
        assert is_gzip(path)
        content = members(path)
        assert content["./"] is None  # ``tar czf part.tar.gz -C dir .`` shape
        names = [n for n in content if n != "./"]
        assert all(n.startswith("./") and n.endswith(".mp4") for n in names)
        clips = {n[2:-4]: content[n] for n in names if not n.startswith("./._")}
        held.update({k: v for k, v in clips.items() if v is not None})
        labels_per_part.append({split.clips[k].clip.label for k in clips})
    assert any(len(labels) > 1 for labels in labels_per_part)  # not grouped by class
    for key, data in held.items():
        entry = split.clips[key]
        assert entry.member == f"./{key}.mp4"
        if entry.corrupted:
            assert len(data) < (entry.size or 0) and sha256(data) != entry.sha256
        else:
            assert sha256(data) == entry.sha256 and len(data) == entry.size


def test_k400_anomalies_plain_tar_deep_prefix_and_appledouble(mirror: MirrorIndex) -> None:
    split = mirror.split("k400", "val")
    plain = mirror.path(split.shards[-1])
    assert plain.name.endswith(".tar.gz") and not is_gzip(plain)
    assert tarfile.is_tarfile(plain)
    prefix = DEEP_PREFIX.format(split="val")
    content = members(plain)
    files = [n for n, data in content.items() if data is not None]
    assert files and all(n.startswith(prefix) for n in files)
    assert any(len(n) > 100 for n in files)  # needs GNU long-name headers
    for name in files:
        key = name[len(prefix) : -4]
        assert split.clips[key].member == name
    first = members(mirror.path(split.shards[0]))
    doubles = {n: d for n, d in first.items() if n.startswith("./._")}
    assert doubles
    for name, data in doubles.items():
        assert data is not None and data.startswith(APPLEDOUBLE_MAGIC)
        assert f"./{name[4:]}" in first  # a sidecar of a real member


def test_corrupted_clips_have_good_copies_in_the_replacement_archive(mirror: MirrorIndex) -> None:
    # As on CVDF: the corrupted clips (and so the replacement set) are train only.
    assert not mirror.split("k400", "val").corrupted
    split = mirror.split("k400", "train")
    assert len(split.corrupted) == 2 and split.replacement == split.corrupted
    archive = mirror.path(mirror.replacement["k400"])
    assert mirror.replacement["k400"] == get_release("k400").replacement
    assert is_gzip(archive)
    content = members(archive)
    assert content[f"{REPLACEMENT_DIR}/"] is None
    for key in split.corrupted:
        entry = split.clips[key]
        good = content[f"{REPLACEMENT_DIR}/{key}.mp4"]
        assert good is not None and sha256(good) == entry.sha256
        assert entry.replacement == f"{REPLACEMENT_DIR}/{key}.mp4"
        in_shard = members(mirror.path(entry.shard or ""))[entry.member or ""]
        assert in_shard is not None and good.startswith(in_shard) and len(in_shard) < len(good)


def test_missing_clips_are_annotated_but_in_no_shard(mirror: MirrorIndex) -> None:
    for name in ("k400", "k700-2020"):
        split = mirror.split(name, "val")
        assert len(split.missing) == 2
        annotated = mirror.path(split.annotations).read_text()
        held = {m for s in split.shards for m in members(mirror.path(s))}
        for key in split.missing:
            clip = split.clips[key].clip
            assert f",{clip.youtube_id},{clip.time_start},{clip.time_end}," in annotated
            assert not any(key in m for m in held)
            assert split.clips[key].sha256 is None


def test_ids_starting_with_dash_are_included(mirror: MirrorIndex) -> None:
    for name in ("k400", "k600", "k700-2020"):
        split = mirror.split(name, "val")
        assert any(c.clip.youtube_id.startswith("-") for c in split.present), name


# --- K600 and K700-2020 -------------------------------------------------------------------------


def test_k600_one_tar_per_class_named_by_the_raw_label(mirror: MirrorIndex) -> None:
    split = mirror.split("k600", "val")
    labels = {c.clip.label for c in split.clips.values()}
    assert "massaging person's head" in labels
    assert any("(" in (label or "") for label in labels)
    assert split.shards == tuple(sorted(f"600/val/{label}.tar.gz" for label in labels))
    for relpath in split.shards:
        label = relpath.removeprefix("600/val/").removesuffix(".tar.gz")
        content = members(mirror.path(relpath))
        assert content[f"{label}/"] is None
        for name, data in content.items():
            if data is None:
                continue
            key = name.removeprefix(f"{label}/").removesuffix(".mp4")
            assert split.clips[key].clip.label == label and sha256(data) == split.clips[key].sha256


def test_k700_2020_class_tars_are_numbered_by_sorted_label(mirror: MirrorIndex) -> None:
    split = mirror.split("k700-2020", "val")
    labels = sorted(
        (Path(mirror_module.__file__).parents[1] / "catalog/label_maps/label_map_k700.txt")
        .read_text()
        .split("\n")[:-1]
    )
    assert len(labels) == 700
    for relpath in split.shards:
        content = members(mirror.path(relpath))
        folders = [n for n, d in content.items() if d is None]
        assert len(folders) == 1
        label = folders[0].rstrip("/")
        assert relpath == f"700_2020/val/k700_val_{labels.index(label) + 1:03d}.tar.gz"
        assert all(n.startswith(f"{label}/") for n in content)
    assert "700_2020/val/k700_val_328.tar.gz" in split.shards  # massaging person's head
    assert "700_2020/val/k700_val_004.tar.gz" in split.shards  # air drumming


# --- path lists, annotations, DeepMind archive --------------------------------------------------


def test_path_lists_hold_the_real_cvdf_urls(mirror: MirrorIndex) -> None:
    for name in ("k400", "k600", "k700-2020"):
        split = mirror.split(name, "val")
        assert split.path_list == get_release(name).path_list_path("val")
        raw = mirror.path(split.path_list).read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        urls = raw.decode().splitlines()
        assert urls == [CVDF_BASE + s for s in split.shards]
        for url in urls:
            assert mirror.path(url.removeprefix(CVDF_BASE)).is_file()
    k600 = mirror.path(mirror.split("k600", "val").path_list or "").read_text()
    assert "https://s3.amazonaws.com/kinetics/600/val/massaging person's head.tar.gz" in k600
    assert "%20" not in k600  # raw spaces, as in the real k600 lists


def test_annotation_files_have_the_real_formats(mirror: MirrorIndex) -> None:
    k400 = mirror.path("400/annotations/val.csv").read_text()
    assert k400.startswith("label,youtube_id,time_start,time_end,split,is_cc\n")
    assert '"massaging person\'s head",' in k400 and "\r" not in k400
    k700 = mirror.path("700_2020/annotations/val.csv").read_bytes()
    assert k700.startswith(b"label,youtube_id,time_start,time_end,split\r\n")
    lines = k700.split(b"\r\n")
    assert lines[-1] == b"" and all(line.endswith(b",validate") for line in lines[1:-1])
    k600 = mirror.path("600/annotations/val.txt").read_text()
    assert k600.startswith("val:\n") and "\nval/massaging person's head:\n" in k600


def test_annotation_files_parse_to_exactly_the_mirror_clips(mirror: MirrorIndex) -> None:
    parse = pytest.importorskip("kinetix.catalog.parse")
    for name, split in mirror.splits.items():
        if split.path_list is None:
            continue
        clips = parse.read_annotations(mirror.path(split.annotations), release=split.release)
        assert {c.key: c.label for c in clips} == {
            k: c.clip.label for k, c in split.clips.items()
        }, name
        assert {c.split for c in clips} == {split.split}


def test_deepmind_k700_archive(mirror: MirrorIndex) -> None:
    split = mirror.split("k700", "val")
    assert mirror.deepmind == {"k700": "deepmind/kinetics700.tar.gz"}
    assert split.annotations == "deepmind/kinetics700.tar.gz" and split.path_list is None
    assert split.annotations_member == "kinetics700/validate.csv"
    content = members(mirror.path(split.annotations))
    text = (content["kinetics700/validate.csv"] or b"").decode()
    lines = text.splitlines()
    assert lines[0] == "label,youtube_id,time_start,time_end,split"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)  # DeepMind files sort by id
    assert {r[4] for r in rows} == {"validate"}
    assert {f"{r[1]}_{int(r[2]):06d}_{int(r[3]):06d}" for r in rows} == set(split.clips)
    assert not split.shards and not split.missing


def test_annotation_rows_are_real_rows(mirror: MirrorIndex, shared_kinetics: Path) -> None:
    """Every row the mirror writes is byte-for-byte a row of the real file."""
    for name, split in mirror.splits.items():
        if split.path_list is None:
            continue
        source = ROW_SOURCES[(split.release, split.split)]
        real = set((shared_kinetics / source.shared).read_bytes().splitlines(keepends=True))
        written = mirror.path(split.annotations).read_bytes().splitlines(keepends=True)
        if source.listing:  # the class lines of the header are ``<label>\n`` lines too
            written = [w for w in written if w.strip()]
        assert set(written) <= real, name


def test_packaged_excerpts_are_byte_exact_slices(shared_kinetics: Path) -> None:
    for source in ROW_SOURCES.values():
        real = (shared_kinetics / source.shared).read_bytes().splitlines(keepends=True)
        excerpt = (EXCERPTS_DIR / source.excerpt).read_bytes().splitlines(keepends=True)
        pos = 0
        for line in excerpt:  # in source order
            pos = real.index(line, pos) + 1
        assert len(excerpt) > 8, source.excerpt


# --- source videos and the index ----------------------------------------------------------------


def test_source_videos_cover_their_clips_and_carry_frame_numbers(mirror: MirrorIndex) -> None:
    assert len(mirror.source_videos) == 4
    padding = MirrorSpec().source_padding
    for video in mirror.source_videos.values():
        clips = [c for c in mirror.clips("k700", "val") if c.key in video.clips]
        end = max(c.clip.time_end for c in clips)
        assert video.duration == end + padding and end <= 60
        with av.open(str(mirror.path(video.path))) as container:
            assert container.metadata.get("comment") == video.youtube_id
            stream = container.streams.video[0]
            assert float(stream.duration * stream.time_base) >= end + padding - 0.2
            numbers = [frame_index(f.to_ndarray(format="gray")) for f in container.decode(stream)]
        assert numbers == list(range(round(video.duration * video.fps)))
        for clip in clips:
            assert clip.source_video == video.path


def test_index_round_trips_and_lists_every_file(mirror: MirrorIndex) -> None:
    loaded = MirrorIndex.load(mirror.root)
    assert loaded.to_json() == mirror.to_json()
    on_disk = {
        p.relative_to(mirror.root).as_posix()
        for p in mirror.root.rglob("*")
        if p.is_file() and p.name != "mirror.json"
    }
    assert set(mirror.files) == on_disk
    for relpath, info in mirror.files.items():
        data = mirror.path(relpath).read_bytes()
        assert (len(data), sha256(data)) == (info.size, info.sha256)
    assert "SYNTHETIC" in mirror.path("README.txt").read_text()
    with pytest.raises(ConfigError, match="has no k400/test"):
        mirror.split("k400", "test")


def test_clip_copies_are_distinct_videos(mirror: MirrorIndex) -> None:
    present = mirror.split("k600", "val").present
    assert len({c.sha256 for c in present}) == len(present)
    entry = present[0]
    data = members(mirror.path(entry.shard or ""))[entry.member or ""] or b""
    with av.open(io.BytesIO(data)) as container:
        assert container.metadata.get("comment") == entry.key
        assert container.streams.video[0].average_rate == 10
        assert container.streams.video[0].frames == 10 * entry.clip.duration


def test_served_shards_match_the_files(mirror: MirrorIndex, mirror_server) -> None:
    relpath = mirror.split("k600", "val").shards[0]
    with urllib.request.urlopen(join_url(mirror_server.url, relpath), timeout=10) as response:
        assert response.read() == mirror.path(relpath).read_bytes()


# --- building -----------------------------------------------------------------------------------


def test_spec_is_validated() -> None:
    with pytest.raises(ConfigError, match="valid releases"):
        MirrorSpec(releases={"k800": ("val",)})
    with pytest.raises(ConfigError, match="valid release/splits are"):
        MirrorSpec(releases={"k600": ("train",)})
    with pytest.raises(ConfigError, match="clips_per_class must be >= 1"):
        MirrorSpec(clips_per_class=0)
    assert MirrorSpec(releases={"Kinetics-700-2020": "validate"}).releases == {
        "k700-2020": ("val",)
    }
    assert releases_for(None, ["test"]) == {"k400": ("test",), "k600": ("test",),
                                           "k700-2020": ("test",)}  # fmt: skip


def test_unknown_class_names_are_refused(tmp_path: Path) -> None:
    spec = MirrorSpec(releases={"k600": ("val",)}, class_names={"k600": ("dying hair",)})
    with pytest.raises(ConfigError, match="no class 'dying hair'"):
        build_mirror(tmp_path / "m", spec)


def test_builds_from_packaged_excerpts_and_rebuilds_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror_module, "find_shared_data", lambda: None)
    spec = MirrorSpec(
        releases={"k600": ("test",), "k700-2020": ("test",)},
        classes=1,
        clips_per_class=2,
        shard_size=1,
        missing=1,
    )
    root = tmp_path / "m"
    index = build_mirror(root, spec)
    assert index.data_source == "packaged excerpts"
    k600 = index.split("k600", "test")
    assert k600.shards == ("600/test/part_0.tar.gz", "600/test/part_1.tar.gz")
    assert index.split("k700-2020", "test").shards == (
        "700_2020/test/k700_test_001.tar.gz",
        "700_2020/test/k700_test_002.tar.gz",
    )
    assert all(c.clip.label is None for c in k600.clips.values()) and len(k600.missing) == 1
    text = index.path("600/annotations/test.csv").read_text()
    assert text.startswith("youtube_id,time_start,time_end,split\n") and len(text.splitlines()) == 4
    # a second build replaces the first
    rebuilt = build_mirror(root, MirrorSpec(releases={"k600": ("test",)}, classes=1))
    assert not (root / "700_2020").exists() and set(rebuilt.splits) == {"k600/test"}
    stray = tmp_path / "not-a-mirror"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        build_mirror(stray, spec)
    assert (stray / "notes.txt").read_text() == "mine"


def test_cli_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cli"
    argv = ["mirror", "build", str(root), "--release", "k600", "--classes", "1"]
    code = main([*argv, "--clips-per-class", "2", "--size", "32x40", "--no-audio"])
    out = capsys.readouterr().out
    assert code == 0 and "SYNTHETIC" in out and "k600/val: 2 clips in 1 shard" in out
    index = MirrorIndex.load(root)
    assert index.spec["video"]["width"] == 32 and index.spec["video"]["audio"] is False
    assert main(["mirror", "build", str(root), "--size", "big"]) == 2
    assert "--size must look like" in capsys.readouterr().err


def test_cli_serve_prints_the_url_and_stops_on_ctrl_c(mirror: MirrorIndex) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinetix.cli.main", "mirror", "serve", str(mirror.root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        head = [proc.stdout.readline() for _ in range(5)]
        assert "SYNTHETIC" in head[0]
        url = next(line.split()[-1] for line in head if line.strip().startswith("at"))
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "400/val/k400_val_path.txt", timeout=10) as response:
            assert response.read().startswith(CVDF_BASE.encode())
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped" in out
