"""Fused processing: `kinetix download --short-side/--fps/--codec/--frames` makes the derived (or
frames) root directly, each clip processed as it lands, ready to export and load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kinetix.cli.main import main
from kinetix.data import KineticsDataset, RawFramesDataset
from kinetix.errors import ConfigError
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def argv(release: str, root: Path, server, *extra: str) -> list[str]:
    return ["download", release, "--split", "val", "--root", str(root), "--layout", "torchvision",
            "--mirror", server.url, "--no-progress", *extra]  # fmt: skip


def rows(root: Path) -> dict:
    with Manifest(manifest_path(root), readonly=True) as m:
        return {r.key: r for r in m.clips()}, m.get_meta("kind"), m.get_meta("settings")


def test_download_short_side_writes_the_derived_root_directly(tmp_path, mirror, mirror_server):
    root = tmp_path / "k400_32"
    assert main(argv("k400", root, mirror_server, "--short-side", "32", "--fps", "5")) == 0
    clips, kind, settings = rows(root)
    s = mirror.split("k400", "val")
    present = {k: r for k, r in clips.items() if r.state == "present"}
    assert set(present) == {k for k, c in s.clips.items() if c.shard or c.replacement}
    for row in present.values():  # resized, re-timed, verified, and in the clip's own place
        assert (row.width, row.height, row.fps) == (32, 40, 5.0), row.values
        assert row.verify == "good" and row.num_frames == 50 and row.origin is None
        assert (root / row.path).is_file() and row.path.endswith(".mp4")
    assert kind == "videos" and '"short_side": 32' in settings
    assert not (root / "originals").exists()  # not asked to keep them
    assert not any(p.name.endswith(".kx-part") for p in root.rglob("*"))
    ds = KineticsDataset(root, "val", frames_per_clip=2, output="numpy")
    assert len(ds) == len(present) and ds[0][0].shape[1:3] == (40, 32)

    # a rerun does nothing; one with other settings is refused instead of mixing clips
    sent = mirror_server.stats.total_bytes
    assert main(argv("k400", root, mirror_server, "--short-side", "32", "--fps", "5")) == 0
    assert mirror_server.stats.total_bytes == sent
    with pytest.raises(ConfigError, match="processed clips"):
        from kinetix.cli.download import config_from
        from kinetix.cli.main import build_parser
        from kinetix.download import download

        download(config_from(build_parser().parse_args(argv("k400", root, mirror_server))))


def test_download_frames_keeps_originals_when_asked(tmp_path, mirror, mirror_server, capsys):
    root = tmp_path / "k600_frames"
    assert main(argv("k600", root, mirror_server, "--frames", "--keep-originals")) == 0
    clips, kind, _settings = rows(root)
    assert kind == "frames"
    present = [r for r in clips.values() if r.state == "present"]
    assert present
    for row in present:
        folder = root / row.path
        assert folder.is_dir() and len(list(folder.glob("img_*.jpg"))) == row.num_frames == 100
        assert row.verify == "good" and Path(row.origin).is_file()
        assert Path(row.origin).is_relative_to(root / "originals")
    capsys.readouterr()
    assert main(["export", str(root), "--format", "mmaction", "--out", str(tmp_path / "l")]) == 0
    assert f"exported {len(present)} clips" in capsys.readouterr().out
    assert len(RawFramesDataset(root, "val", frames_per_clip=2, output="numpy")) == len(present)
    assert main(["verify", str(root), "--no-progress"]) == 0  # nothing to redo, no strays
    out = capsys.readouterr().out
    assert f"{len(present)} skipped" in out and "not in the manifest" not in out


def test_youtube_clips_are_processed_as_they_land_too(tmp_path, mirror, mirror_server):
    root = tmp_path / "k700_32"
    args = ["download", "k700", "--split", "val", "--root", str(root), "--source", "youtube",
            "--mirror", mirror_server.url, "--rate", "50", "--no-progress", "--short-side", "32",
            "--youtube-url-template", mirror_server.url + "youtube/{youtube_id}.mp4"]  # fmt: skip
    assert main(args) == 0
    clips, kind, _settings = rows(root)
    present = [r for r in clips.values() if r.state == "present"]
    assert present and kind == "videos"
    for row in present:
        assert min(row.width, row.height) == 32 and row.verify == "good" and row.trim == "exact"
        assert (root / row.path).is_file()
    assert not (root / "originals").exists()


def test_fused_output_equals_download_then_process(tmp_path, mirror, mirror_server):
    """Same ffmpeg arguments either way: the fused root's clips hold the very packets `process`
    makes from the downloaded root (one ffmpeg thread each, so x264 is deterministic)."""
    from kinetix.config import DownloadConfig, ProcessConfig
    from kinetix.download import download
    from kinetix.process.transcode import process_dataset

    settings = ProcessConfig(short_side=32, fps=5, threads=1)
    common = dict(release="k400", split="val", layout="torchvision", mirror=mirror_server.url,
                  progress=False)  # fmt: skip
    plain, derived, fused = tmp_path / "plain", tmp_path / "derived", tmp_path / "fused"
    download(DownloadConfig(root=plain, **common))
    process_dataset(plain, derived, settings)
    download(DownloadConfig(root=fused, process=settings, **common))
    made, _, derived_settings = rows(derived)
    landed, _, fused_settings = rows(fused)
    fields = ("state", "path", "width", "height", "fps", "num_frames", "verify")
    assert {k: [getattr(r, f) for f in fields] for k, r in made.items()} == {
        k: [getattr(r, f) for f in fields] for k, r in landed.items() if r.state == "present"
    }
    assert json.loads(derived_settings) == {
        k: v for k, v in json.loads(fused_settings).items() if k != "fused"
    }
    for row in made.values():
        assert packets(derived / row.path) == packets(fused / row.path), row.path


def packets(path: Path) -> dict[str, list[tuple[int | None, int | None, str]]]:
    """Each stream's packets (pts, dts, payload digest). Not the file's bytes: ffmpeg 7+ muxes
    from one thread per stream, so the same command cuts audio/video chunks differently from
    run to run (measured: 3 sizes in 6 runs of one command, identical packets)."""
    import hashlib

    import av

    out = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            with av.open(str(path)) as c:
                out[stream.type] = [
                    (p.pts, p.dts, hashlib.sha256(bytes(p)).hexdigest())
                    for p in c.demux(c.streams[stream.index])
                    if p.size
                ]
    return out


def test_fused_root_exports_and_loads_with_no_verify_step(tmp_path, mirror_server, capsys):
    root = tmp_path / "k400_32"
    assert main(argv("k400", root, mirror_server, "--short-side", "32")) == 0
    clips, _, _ = rows(root)
    present = [r for r in clips.values() if r.state == "present"]
    capsys.readouterr()
    out = tmp_path / "lists"
    assert main(["export", str(root), "--format", "mmaction", "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert f"exported {len(present)} clips" in said.out and "left out" not in said.err
    ds = KineticsDataset(root, "val", frames_per_clip=2, output="numpy")
    assert len(ds) == len(present)
    assert all(min(ds[i][0].shape[1:3]) == 32 for i in range(len(ds)))


def test_interrupted_fused_run_resumes(tmp_path, mirror):
    """Ctrl-C in a fused download: every output at a final path is recorded; a rerun fetches
    only what is left (partials resumed) and leaves no staged outputs behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from kinetix.store.layout import partial_dir
    from kinetix.synthetic.server import MirrorServer

    files = [*mirror.split("k400", "val").shards, *mirror.replacement.values()]
    total = sum(mirror.path(p).stat().st_size for p in files)
    root = tmp_path / "root"
    env = {**os.environ, "KINETIX_CACHE": str(tmp_path / "cache")}
    with MirrorServer(mirror.root, total_bps=total / 10.0) as server:
        args = [sys.executable, "-m", "kinetix.cli.main", *argv("k400", root, server)]
        args += ["--short-side", "32", "--parallel", "2", "--connections", "2"]
        args += ["--piece-size", str(16 << 10)]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 60
        while server.stats.total_bytes < 0.4 * total:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "download never got going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the fused run did not stop after the signal")
        assert proc.returncode == 128 + signal.SIGINT, err
        assert "Traceback" not in err
        first = server.stats.total_bytes
        clips, _, _ = rows(root)
        recorded = {r.path for r in clips.values() if r.state == "present"}
        on_disk = {
            p.relative_to(root).as_posix()
            for p in root.rglob("*.mp4")
            if ".kinetix" not in p.parts and not p.name.startswith(".")
        }
        assert on_disk == recorded  # nothing placed unrecorded, nothing recorded unplaced
        assert any(partial_dir(root).glob("*.part.state")), "partials kept for resume"

        rerun = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
        assert rerun.returncode == 0, rerun.stderr
        # resumed: the rerun fetched what was left, not the split again from scratch
        assert server.stats.total_bytes - first < total - 0.3 * total
    clips, _, _ = rows(root)
    s = mirror.split("k400", "val")
    present = {k for k, r in clips.items() if r.state == "present"}
    assert present == {k for k, c in s.clips.items() if c.shard or c.replacement}
    for row in clips.values():
        if row.state == "present":
            assert min(row.width, row.height) == 32 and row.verify == "good"
    stage = partial_dir(root)
    assert not any((stage / "landed").glob("*")) and not any((stage / "landing").rglob("*.mp4"))


def test_an_output_that_stops_early_marks_its_source_damaged():
    from kinetix.process.landing import short_output

    source = {"duration": 10.0, "fps": 25.0}
    assert short_output(source, {"duration": 10.0, "fps": 5.0}) is None
    assert short_output(source, {"duration": 9.96, "fps": 25.0}) is None  # a frame short: fine
    assert "decode for 6.00 s of the 10.00 s" in short_output(source, {"duration": 6.0})
    assert short_output(source, {"num_frames": 250, "fps": 25.0}) is None  # a frames folder
    assert short_output(source, {"num_frames": 100, "fps": 25.0}) is not None
