"""kinetix frames: whole img_00001.jpg folders or none, counts recorded, space checked first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import wave
from collections import namedtuple
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from _dataset import SPEC, Item, build_root, clips, media, meta, rows

from kinetix.cli.main import main
from kinetix.config import AudioConfig, FramesConfig, JpegEncoder
from kinetix.errors import ConfigError, DiskSpaceError
from kinetix.process.audio import extract_audio
from kinetix.process.ffmpeg import run_ffmpeg
from kinetix.process.frames import FRAME_PATTERN, count_frames, frame_args
from kinetix.process.jpeg import (
    ffmpeg_qtable,
    jpeg_quality,
    libjpeg_qtables,
    resolve_encoder,
    write_frames,
)
from kinetix.store.layout import manifest_path, partial_dir
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import frame_index, jpeg_quantisation

A, B, SILENT, HTML, EMPTY = range(5)
CLIPS = clips("val", ["abseiling", "massaging person's head", "air drumming", "abseiling", None])
KEYS = [c.key for c in CLIPS]


@pytest.fixture
def root(tmp_path) -> Path:
    items = [
        Item(CLIPS[A]),
        Item(CLIPS[B]),
        Item(CLIPS[SILENT], SPEC.with_(audio=False)),
        Item(CLIPS[HTML], corrupt="html"),
        Item(CLIPS[EMPTY], corrupt="empty"),  # a zero-byte file
    ]
    return build_root(tmp_path / "k400", items)


def _frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


def test_frames_are_whole_numbered_and_reruns_are_free(root, tmp_path) -> None:
    from kinetix.process.frames import extract_dataset

    out = tmp_path / "frames"
    report = extract_dataset(root, out, FramesConfig(workers=2))
    assert (report.planned, report.done, report.frames) == (5, 3, 150) and not report.errors
    assert report.failed == {"unreadable": 1, "empty_file": 1}
    got = rows(out)
    for i in (A, B, SILENT):
        row = got[KEYS[i]]
        folder = out / row["path"]
        assert row["path"] == f"val/{CLIPS[i].label}/{KEYS[i]}"
        assert sorted(os.listdir(folder)) == [f"img_{n:05d}.jpg" for n in range(1, 51)]
        assert (row["num_frames"], row["width"], row["height"], row["fps"]) == (50, 64, 80, 25.0)
        assert row["state"] == "present" and row["origin"] == str(
            root / rows(root)[KEYS[i]]["path"]
        )
    first, last = (_frame(out / got[KEYS[A]]["path"] / f"img_{n:05d}.jpg") for n in (1, 50))
    assert frame_index(first.to_ndarray(format="gray")) == 0  # 1-based names, source frame 0
    assert frame_index(last.to_ndarray(format="gray")) == 49
    assert got[KEYS[EMPTY]]["error_message"] == "the file is empty (0 bytes)"
    assert "moov atom not found" in got[KEYS[HTML]]["error_message"]
    assert meta(out, "kind") == "frames" and meta(out, "source_root") == str(root)
    assert not list(partial_dir(out).iterdir())

    again = extract_dataset(root, out, FramesConfig(workers=2))
    assert (again.planned, again.done, again.skipped, again.failed_before) == (0, 0, 3, 2)


def test_missing_frames_are_redone_and_half_folders_never_count(root, tmp_path) -> None:
    from kinetix.process.frames import extract_dataset

    out = tmp_path / "frames"
    extract_dataset(root, out, FramesConfig(workers=0))
    folder = out / rows(out)[KEYS[B]]["path"]
    for n in (7, 50):
        (folder / f"img_{n:05d}.jpg").unlink()
    # a folder the manifest does not call present (a run killed before recording it)
    half = out / rows(out)[KEYS[SILENT]]["path"]
    with Manifest(manifest_path(out)) as m:
        m.update("k400", "val", KEYS[SILENT], state="missing")
    for jpg in sorted(half.glob("*.jpg"))[10:]:
        jpg.unlink()
    (partial_dir(out) / f"val.{KEYS[A]}").mkdir()  # a killed run's temp folder

    redo = extract_dataset(root, out, FramesConfig(workers=0))
    assert (redo.planned, redo.redone, redo.done, redo.skipped) == (2, 1, 2, 1)
    assert count_frames(folder)[0] == count_frames(half)[0] == 50
    assert rows(out)[KEYS[B]]["error_code"] is None
    assert not list(partial_dir(out).iterdir())


@pytest.mark.parametrize(
    ("encoder", "who"), [("ffmpeg", "ffmpeg wrote"), ("turbo", "PyAV decoded")]
)
def test_a_short_extraction_is_missing_frames_not_a_short_folder(
    root, tmp_path, encoder, who
) -> None:
    from kinetix.process.frames import extract_dataset

    with Manifest(manifest_path(root)) as m:  # verified at 80 frames; the file decodes 50
        m.update("k400", "val", KEYS[A], verify="good", num_frames=80)
    out = tmp_path / "frames"
    report = extract_dataset(root, out, FramesConfig(workers=0, encoder=encoder))
    row = rows(out)[KEYS[A]]
    assert row["state"] == "failed" and row["error_code"] == "missing_frames"
    assert row["error_message"] == f"{who} 50 frames, the clip has 80"
    assert report.failed["missing_frames"] == 1
    assert not (out / "val" / "abseiling" / KEYS[A]).exists()


@pytest.mark.parametrize("encoder", ["ffmpeg", "turbo"])
def test_fps_size_and_audio(root, tmp_path, encoder) -> None:
    from kinetix.process.frames import extract_dataset

    out = tmp_path / "frames"
    config = FramesConfig(
        fps=10, short_side=40, audio=AudioConfig(), quality=5, workers=0, encoder=encoder
    )
    assert extract_dataset(root, out, config).done == 3
    row = rows(out)[KEYS[A]]
    folder = out / row["path"]
    assert abs(count_frames(folder)[0] - 20) <= 1 and row["num_frames"] == count_frames(folder)[0]
    assert (row["width"], row["height"], row["fps"], row["has_audio"]) == (40, 50, 10.0, 1)
    with wave.open(str(folder / "audio.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.getnframes() == pytest.approx(32000, rel=0.05)
    silent = rows(out)[KEYS[SILENT]]
    assert silent["has_audio"] == 0 and not (out / silent["path"] / "audio.wav").exists()

    (folder / "audio.wav").unlink()  # the folder is not whole without it
    assert extract_dataset(root, out, config).redone == 1
    assert (folder / "audio.wav").is_file()


def test_standalone_audio_and_literal_percent(tmp_path) -> None:
    clip = tmp_path / "-clip.mp4"  # a leading dash must never read as an option
    shutil.copyfile(media(SPEC), clip)
    dest = extract_audio(clip, tmp_path / "a.wav", AudioConfig(8000, 2))
    with wave.open(str(dest)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (8000, 2)
    odd = tmp_path / "100%_done"  # % is special in ffmpeg's image pattern
    odd.mkdir()
    run_ffmpeg(frame_args(str(clip), str(odd), FramesConfig(), 1, audio=False))
    assert count_frames(odd)[0] == 50


def test_disk_space_is_estimated_from_the_first_clips(root, tmp_path, monkeypatch) -> None:
    import kinetix.process.frames as frames

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(frames.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 5000))
    out = tmp_path / "frames"
    with pytest.raises(DiskSpaceError) as err:
        frames.extract_dataset(root, out, FramesConfig(workers=0, sample_clips=1))
    message = str(err.value)
    assert "3 more clips need about" in message and "5.0 KB free" in message
    assert "per clip from 1 sampled" in message
    assert [r["state"] for r in rows(out).values()].count("present") == 1  # the sample is kept


def test_unwritable_output_is_one_clear_line(root, tmp_path, capsys) -> None:
    target = Path("/sys/kinetix-frames") if os.geteuid() == 0 else tmp_path / "ro" / "out"
    if os.geteuid() != 0:
        target.parent.mkdir()
        target.parent.chmod(0o555)
    try:
        assert main(["frames", str(root), "--out", str(target), "--no-progress"]) == 2
    finally:
        if os.geteuid() != 0:
            target.parent.chmod(0o755)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to" in err


def test_cli_and_config_checks(root, tmp_path, capsys) -> None:
    out = tmp_path / "frames"
    argv = ["frames", str(root), "--out", str(out), "--audio", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "3 clips extracted (150 frames" in text and "failed: 2 clips" in text
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "0 clips extracted" in text and "3 skipped" in text and "not retried" in text
    with pytest.raises(ConfigError, match="between 2"):
        FramesConfig(quality=1)
    with pytest.raises(ConfigError, match="valid values are auto, ffmpeg, turbo"):
        FramesConfig(encoder="mjpeg")
    with pytest.raises(ConfigError, match="valid values are 1, 2"):
        AudioConfig(channels=6)


def _both_encoders(src: Path, tmp_path: Path, config: FramesConfig) -> tuple[Path, Path]:
    """(ffmpeg's folder, turbo's folder) for the same clip and settings."""
    ffmpeg, turbo = tmp_path / "ffmpeg", tmp_path / "turbo"
    ffmpeg.mkdir()
    turbo.mkdir()
    run_ffmpeg(frame_args(str(src), str(ffmpeg), config, 1, audio=False))
    assert write_frames(str(src), turbo, config, 1, FRAME_PATTERN) == count_frames(turbo)[0]
    return ffmpeg, turbo


def _image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


@pytest.mark.parametrize(
    ("fps", "short_side", "upscale", "size"),
    [(None, None, False, (64, 80)), (10, None, False, (64, 80)), (7.5, 40, False, (40, 50)),
     (29.97, 100, True, (100, 126)), (None, 100, False, (64, 80))],
)  # fmt: skip
def test_both_encoders_write_the_same_folders(tmp_path, fps, short_side, upscale, size) -> None:
    config = FramesConfig(fps=fps, short_side=short_side, upscale=upscale)
    ffmpeg, turbo = _both_encoders(media(SPEC), tmp_path, config)
    names = sorted(os.listdir(ffmpeg))
    assert names and sorted(os.listdir(turbo)) == names and names[0] == "img_00001.jpg"
    for name in (names[0], names[len(names) // 2], names[-1]):
        a, b = _image(ffmpeg / name), _image(turbo / name)
        assert (a.shape[1], a.shape[0]) == size and a.shape == b.shape
        # the same frame in the same (full) range: JPEG noise and scaler rounding only
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])  # 4:4:4 goes through a format filter
def test_turbo_handles_odd_sizes_and_quality(tmp_path, pix_fmt) -> None:
    src = tmp_path / "odd.mkv"  # H.264 cannot be odd-sized; FFV1 can
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=65x49:rate=25", "-t", "0.4",
                "-c:v", "ffv1", "-pix_fmt", pix_fmt, "-y", f"file:{src}"])  # fmt: skip
    ffmpeg, turbo = _both_encoders(src, tmp_path, FramesConfig())
    assert (
        sorted(os.listdir(turbo))
        == sorted(os.listdir(ffmpeg))
        == [f"img_{n:05d}.jpg" for n in range(1, 11)]
    )
    a, b = _image(ffmpeg / "img_00005.jpg"), _image(turbo / "img_00005.jpg")
    assert a.shape == b.shape == (49, 65, 3)
    # luma only: turbo writes 4:4:4 sources as 4:2:0, which blurs testsrc's sharp colour bars
    a, b = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(int) for image in (a, b))
    assert np.abs(a - b).mean() < 3

    low = tmp_path / "low"
    low.mkdir()
    write_frames(str(src), low, FramesConfig(quality=31), 1, FRAME_PATTERN)
    assert count_frames(low)[1] < count_frames(turbo)[1] / 2


def _first_jpeg(folder: Path) -> bytes:
    return (folder / (FRAME_PATTERN % 1)).read_bytes()


@pytest.mark.parametrize("quality", [2, 5])
def test_the_default_jpegs_are_ffmpegs_own(root, tmp_path, quality) -> None:
    from kinetix.process.ffmpeg import find_ffmpeg
    from kinetix.process.frames import extract_dataset

    out = tmp_path / "frames"
    extract_dataset(root, out, FramesConfig(workers=0, quality=quality))
    row = rows(out)[KEYS[A]]
    folder = out / row["path"]
    q = jpeg_quantisation(_first_jpeg(folder))
    # ffmpeg's mjpeg quantisation: MPEG-1's intra matrix x q / 8, one table for Y, Cb and Cr
    assert q.sampling == ((2, 2), (1, 1), (1, 1))
    assert q.tables == (ffmpeg_qtable(quality),) * 3
    assert q.tables[0][:3] == (8, 16 * quality >> 3, 19 * quality >> 3)
    # and byte for byte what the plain command writes, every frame
    plain = tmp_path / "plain"
    plain.mkdir()
    src = root / rows(root)[KEYS[A]]["path"]
    subprocess.run(
        [find_ffmpeg().path, "-nostdin", "-loglevel", "error", "-i", str(src),
         "-q:v", str(quality), str(plain / FRAME_PATTERN)],
        check=True,
    )  # fmt: skip
    names = sorted(os.listdir(plain))
    assert len(names) == row["num_frames"] == 50
    assert all((folder / n).read_bytes() == (plain / n).read_bytes() for n in names)


@pytest.mark.parametrize("quality", [2, 5, 31])
def test_turbo_quantises_with_libjpegs_tables_at_the_equal_distortion_quality(
    root, tmp_path, quality
) -> None:
    turbo = tmp_path / "turbo"
    turbo.mkdir()
    src = root / rows(root)[KEYS[A]]["path"]
    write_frames(str(src), turbo, FramesConfig(quality=quality), 1, FRAME_PATTERN)
    q = jpeg_quantisation(_first_jpeg(turbo))
    luma, chroma = libjpeg_qtables(jpeg_quality(quality))
    assert q.sampling == ((2, 2), (1, 1), (1, 1)) and q.tables == (luma, chroma, chroma)


def test_jpeg_quality_matches_ffmpegs_mean_squared_step() -> None:
    def msq(luma, chroma):  # a 4:2:0 MCU: four luma blocks, two chroma
        return (4 * np.square(luma).sum() + 2 * np.square(chroma).sum()) / 6

    for qscale in range(2, 32):
        table = np.array(ffmpeg_qtable(qscale))
        wanted = np.log(msq(table, table))
        err = {Q: abs(np.log(msq(*map(np.array, libjpeg_qtables(Q)))) - wanted)
               for Q in range(1, 101)}  # fmt: skip
        assert err[jpeg_quality(qscale)] == min(err.values()), qscale
    assert jpeg_quality(2) < 95  # libjpeg 95 is much finer than -q:v 2 (steps 1-12 vs 4-20)
    # libjpeg's own scaling: quality 50 is Annex K as printed, 100 is all ones
    assert libjpeg_qtables(50)[0][:3] == (16, 11, 10) and set(libjpeg_qtables(100)[1]) == {1}


def test_a_frames_root_records_its_encoder_and_refuses_another(root, tmp_path) -> None:
    from kinetix.process.frames import extract_dataset

    out = tmp_path / "frames"
    extract_dataset(root, out, FramesConfig(workers=0, encoder="turbo"))
    settings = json.loads(meta(out, "settings"))
    assert (settings["encoder"], settings["quality"]) == ("turbo", 2)
    assert settings["libjpeg_quality"] == jpeg_quality(2)
    with pytest.raises(ConfigError, match=r"encoder 'turbo' \(now 'ffmpeg'\)"):
        extract_dataset(root, out, FramesConfig(workers=0))
    other = tmp_path / "default"
    extract_dataset(root, other, FramesConfig(workers=0, encoder="auto"))
    assert json.loads(meta(other, "settings"))["encoder"] == "ffmpeg"
    assert "libjpeg_quality" not in json.loads(meta(other, "settings"))


def test_auto_is_ffmpeg_and_turbo_needs_simplejpeg(monkeypatch) -> None:
    import kinetix.process.jpeg as jpeg

    assert FramesConfig().encoder is JpegEncoder.FFMPEG
    assert resolve_encoder(JpegEncoder.AUTO) is JpegEncoder.FFMPEG
    assert resolve_encoder(JpegEncoder.TURBO) is JpegEncoder.TURBO
    monkeypatch.setattr(jpeg, "simplejpeg", None)
    assert resolve_encoder(JpegEncoder.AUTO) is JpegEncoder.FFMPEG
    with pytest.raises(ConfigError, match=r"pip install 'simplejpeg>=1\.7'"):
        resolve_encoder(JpegEncoder.TURBO)


def test_damaged_clips_get_the_same_reasons_from_both_encoders(tmp_path) -> None:
    from kinetix.process.frames import extract_dataset

    good = {"verify": "good", "num_frames": 50}
    items = [
        Item(CLIPS[A], corrupt="truncate", keep=0.6, fields=tuple(good.items())),
        Item(CLIPS[B], corrupt="garbage"),
        Item(CLIPS[HTML], corrupt="html"),
    ]
    root = build_root(tmp_path / "k400", items)
    got = {}
    for encoder in ("ffmpeg", "turbo"):
        out = tmp_path / encoder
        report = extract_dataset(root, out, FramesConfig(workers=0, encoder=encoder))
        assert report.done + sum(report.failed.values()) == 3 and not report.errors
        got[encoder] = {k: (r["state"], r["error_code"]) for k, r in rows(out).items()}
    assert got["turbo"] == got["ffmpeg"]
    assert got["turbo"][KEYS[A]] == ("failed", "missing_frames")


def test_a_rotated_clip_is_left_to_ffmpegs_autorotation(tmp_path) -> None:
    src = tmp_path / "rotated.mp4"  # a phone video: the display matrix turns it upright
    run_ffmpeg(["-display_rotation", "90", "-i", f"file:{media(SPEC)}", "-c", "copy",
                "-y", f"file:{src}"])  # fmt: skip
    turbo = tmp_path / "turbo"
    turbo.mkdir()
    assert write_frames(str(src), turbo, FramesConfig(), 1, FRAME_PATTERN) is None
    assert not os.listdir(turbo)  # nothing half-written before handing over

    from kinetix.process.frames import FramesTask, extract_frames

    out, tmp = str(tmp_path / "out"), str(tmp_path / "tmp")
    config = FramesConfig()
    task = FramesTask(
        "k400", "val", "rot", "rot", str(src), out, tmp, config, 1, None, JpegEncoder.TURBO
    )
    f = extract_frames(task).fields
    assert (f["state"], f["num_frames"], f["width"], f["height"]) == ("present", 50, 80, 64)
