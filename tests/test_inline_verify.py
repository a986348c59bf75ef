"""Inline verification: every clip a stage writes is checked before it is placed and recorded,
so the root it makes is exportable and loadable with no `verify` step and no further read."""

from __future__ import annotations

import builtins
import io
import os
import tarfile
from pathlib import Path

import av
import pytest

from kinetix.cli.main import main
from kinetix.config import DownloadConfig, VerifyConfig
from kinetix.data import KineticsDataset
from kinetix.download import download
from kinetix.export.config import ExportConfig
from kinetix.export.job import export_root
from kinetix.sources.cvdf import inline_check
from kinetix.store.layout import LabelStyle, manifest_path, quarantine_dir
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec, make_video
from kinetix.transfer.extract import ExtractPlan, extract_stream


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


class ClipOpens:
    """Counts every open of a file under ``root`` (Python, os and PyAV/libav opens)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = str(root.resolve())
        self.paths: list[str] = []
        real_open, real_os_open, real_av_open = builtins.open, os.open, av.open

        def note(file: object) -> None:
            if isinstance(file, (str, os.PathLike)):
                path = os.path.abspath(os.fspath(file))
                if path.startswith(self.root) and f"{os.sep}.kinetix{os.sep}" not in path:
                    self.paths.append(path)

        def py_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
            note(file)
            return real_open(file, *args, **kwargs)

        def os_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
            note(file)
            return real_os_open(file, *args, **kwargs)

        def av_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
            note(file)
            return real_av_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", py_open)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(av, "open", av_open)

    def clips(self) -> list[str]:
        return [p for p in self.paths if p.endswith(".mp4")]


def test_download_is_exportable_and_loadable_with_no_further_read(
    tmp_path, mirror, mirror_server, monkeypatch
):
    root = tmp_path / "k400"
    cfg = DownloadConfig(
        root=root, release="k400", split="val", mirror=mirror_server.url, progress=False,
        layout=LabelStyle.UNDERSCORE,
    )  # fmt: skip
    report = download(cfg)
    assert report.ok, report.errors
    with Manifest(manifest_path(root), readonly=True) as m:
        present = list(m.clips(states=["present"]))
    expected = [c for c in mirror.split("k400", "val").clips.values() if c.shard or c.replacement]
    assert len(present) == len(expected)
    for row in present:  # probed and decode-checked while it landed
        assert row.verify == "good" and row.verify_level == "quick", row.values
        assert row.num_frames and row.fps and row.width and row.codec == "h264"

    opens = ClipOpens(root, monkeypatch)
    out = tmp_path / "lists"
    exported = export_root(root, ExportConfig("mmaction", out=out))
    ds = KineticsDataset(root, "val", frames_per_clip=2, frame_stride=1, output="numpy")
    assert exported.written == len(present) and len(ds) == len(present)
    assert exported.left_out == {"failed": len(mirror.split("k400", "val").missing)}
    assert opens.clips() == []  # no probe, no verify: the manifest already knows every clip
    frames, _label = ds[0]
    assert frames.shape[0] == 2
    assert len(opens.clips()) == 1  # loading a sample opens its clip once, nothing else


def test_cli_download_then_export_and_load_needs_no_verify(tmp_path, mirror_server, capsys):
    root = tmp_path / "k600"
    argv = ["download", "k600", "--split", "val", "--root", str(root), "--layout", "torchvision"]
    assert main([*argv, "--mirror", mirror_server.url, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["export", str(root), "--format", "slowfast", "--out", str(tmp_path / "x")]) == 0
    printed = capsys.readouterr().out
    assert " 0 clips" not in printed and "left out" not in printed
    ds = KineticsDataset(root, "val", frames_per_clip=2, output="numpy")
    assert len(ds) > 0


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_bad_member_is_quarantined_with_its_reason_and_the_rest_placed(tmp_path):
    good = make_video(tmp_path / "good.mp4", VideoSpec(duration=2.0, fps=10, audio=False))
    data = good.read_bytes()
    members = {
        "val/abc_000000_000002.mp4": data,
        "val/cut_000000_000002.mp4": data[: len(data) // 3],  # a clip cut short in the shard
        "val/html_000000_000002.mp4": b"<html><body>503</body></html>\n",
    }
    root = tmp_path / "root"
    wanted = {Path(n).stem: root / "val" / "x" / Path(n).name for n in members}
    plan = ExtractPlan(
        root=root, wanted=wanted, check=inline_check(VerifyConfig()),
        quarantine=quarantine_dir(root),
    )  # fmt: skip
    report = extract_stream(io.BytesIO(_tar_gz(members)), plan, name="part_0.tar.gz")
    assert set(report.written) == {"abc_000000_000002"}
    assert (root / "val/x/abc_000000_000002.mp4").read_bytes() == data
    assert report.written["abc_000000_000002"].verdict.fields["num_frames"] == 20
    assert set(report.quarantined) == {"cut_000000_000002", "html_000000_000002"}
    for key, clip in report.quarantined.items():
        assert not (root / "val/x" / f"{key}.mp4").exists()  # never in place, not even briefly
        assert clip.path == quarantine_dir(root) / "val/x" / f"{key}.mp4" and clip.path.exists()
        assert clip.verdict.fields["error_code"] in ("truncated", "unreadable")
    assert report.not_found == []


def test_a_shard_with_broken_clips_quarantines_them_counts_them_and_goes_on(
    tmp_path, mirror, mirror_server, capsys
):
    """K400 train's corrupted clips, with no replacement set on the mirror to mend them: set
    aside with the reason, counted, the other clips placed (a gap, not a failed run); a rerun
    with --retry-failed takes the replacement set and fetches no part again."""
    mirror_server.add_fault("*replacement*", "status", times=None, status=404)
    root = tmp_path / "k400"
    argv = ["download", "k400", "--split", "train", "--root", str(root)]
    argv += ["--mirror", mirror_server.url, "--no-progress"]
    assert main(argv) == 0  # the mirror lacks the replacement set: a gap, not a failure
    out = capsys.readouterr().out
    corrupted = mirror.split("k400", "train").corrupted
    assert corrupted
    assert "quarantined (the source's copy failed the check" in out and "truncated" in out
    with Manifest(manifest_path(root), readonly=True) as m:
        rows = {r.key: r for r in m.clips()}
    for key in corrupted:
        row = rows[key]
        assert row.state == "failed" and row.verify == "bad" and row.error_code == "truncated"
        assert row.path.startswith(".kinetix/quarantine/") and (root / row.path).is_file()
    good = [r for r in rows.values() if r.state == "present"]
    assert good and all(r.verify == "good" for r in good)

    mirror_server.clear_faults()
    sent = mirror_server.stats.copy().bytes_sent
    assert main([*argv, "--retry-failed"]) == 0  # the replacement set mends them now
    again = mirror_server.stats.bytes_sent
    parts = mirror.split("k400", "train").shards
    assert parts and all(again[p] == sent[p] for p in parts)  # no part fetched again for them
    with Manifest(manifest_path(root), readonly=True) as m:
        for key in corrupted:
            row = m.get("k400", "train", key)
            assert row is not None and row.state == "present" and row.verify == "good"
            assert row.source == "cvdf_replacement"
            assert not (quarantine_dir(root) / row.path).exists()  # the stale copy is gone


@pytest.fixture
def downloaded(tmp_path, mirror_server) -> Path:
    """A K600 val root as `kinetix download` leaves it (torchvision layout: no spaces)."""
    root = tmp_path / "k600"
    argv = ["download", "k600", "--split", "val", "--root", str(root), "--layout", "torchvision"]
    assert main([*argv, "--mirror", mirror_server.url, "--no-progress"]) == 0
    return root


def _present(root: Path) -> list:
    with Manifest(manifest_path(root), readonly=True) as m:
        return list(m.clips(states=["present"]))


def test_process_root_exports_every_clip_with_no_verify_step(downloaded, tmp_path, capsys):
    out = tmp_path / "k600_32"
    assert main(["process", str(downloaded), "--out", str(out), "--short-side", "32",
                 "--no-progress", "--workers", "2"]) == 0  # fmt: skip
    rows = _present(out)
    assert len(rows) == len(_present(downloaded))
    for row in rows:
        assert row.verify == "good" and row.num_frames and min(row.width, row.height) == 32
    capsys.readouterr()
    assert main(["export", str(out), "--format", "mmaction", "--out", str(tmp_path / "l")]) == 0
    printed = capsys.readouterr().out
    assert f"exported {len(rows)} clips" in printed and "left out" not in printed
    ds = KineticsDataset(out, "val", frames_per_clip=2, output="numpy", short_side=None)
    assert len(ds) == len(rows) and ds[0][0].shape[1:3] == (40, 32)


def test_frames_root_exports_loads_and_verifies_with_no_verify_step(downloaded, tmp_path, capsys):
    from kinetix.data import RawFramesDataset

    frames = tmp_path / "frames"
    assert main(["frames", str(downloaded), "--out", str(frames), "--no-progress",
                 "--workers", "2"]) == 0  # fmt: skip
    rows = _present(frames)
    assert len(rows) == len(_present(downloaded))
    assert all(r.verify == "good" and r.num_frames and r.width == 64 for r in rows)
    capsys.readouterr()
    assert main(["export", str(frames), "--format", "mmaction", "--out", str(tmp_path / "l")]) == 0
    printed = capsys.readouterr().out
    assert f"exported {len(rows)} clips" in printed and "left out" not in printed
    ds = RawFramesDataset(frames, "val", frames_per_clip=2, output="numpy")
    assert len(ds) == len(rows)

    # `verify` checks a frames root later: untouched folders are skipped, damage is caught
    assert main(["verify", str(frames), "--no-progress"]) == 0
    assert f"{len(rows)} skipped" in capsys.readouterr().out
    hole, cut = rows[0], rows[1]
    (frames / hole.path / "img_00003.jpg").unlink()
    last = frames / cut.path / f"img_{cut.num_frames:05d}.jpg"
    last.write_bytes(last.read_bytes()[:200])
    assert main(["verify", str(frames), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 checked" in out and "2 bad" in out and "missing_frames 1" in out
    with Manifest(manifest_path(frames), readonly=True) as m:
        for row in (hole, cut):
            now = m.get(row.release, row.split, row.key)
            assert now is not None and now.state == "quarantined" and now.verify == "bad"
            assert (frames / now.path).is_dir() and not (frames / row.path).exists()
