"""kinetix process: derived roots like mmaction2's kinetics400_256, resumable, failures recorded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from _dataset import SPEC, Item, build_root, clips, meta, rows

from kinetix.cli.main import main
from kinetix.config import FramesConfig, ProcessConfig
from kinetix.errors import ConfigError, FFmpegError, KinetixError
from kinetix.process.ffmpeg import threads_per_job
from kinetix.process.probe import probe_video
from kinetix.store.layout import partial_dir

WIDE, TALL, SMALL, HTML, BAD, GONE = range(6)
CLIPS = clips("train", ["abseiling", "abseiling", "air drumming", "air drumming", None, None])
KEYS = [c.key for c in CLIPS]


@pytest.fixture
def root(tmp_path) -> Path:
    items = [
        Item(CLIPS[WIDE], SPEC.with_(width=160, height=120)),
        Item(CLIPS[TALL], SPEC.with_(width=64, height=96, audio=False)),
        Item(CLIPS[SMALL], SPEC.with_(width=48, height=40)),
        Item(CLIPS[HTML], corrupt="html"),  # not verified yet: present, not a video
        Item(CLIPS[BAD], fields=(("verify", "bad"),)),  # verified bad: skipped
        Item(CLIPS[GONE], spec=None, state="quarantined"),
    ]
    return build_root(tmp_path / "k400", items)


@pytest.fixture
def unwritable(tmp_path) -> Iterator[Path]:
    """A place no folder can be made in (root ignores modes, but sysfs refuses it)."""
    if os.geteuid() == 0:
        target = Path("/sys/kinetix-test-out")
    else:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
        target = parent / "out"
    try:
        target.mkdir()
    except OSError:
        yield target
    else:  # pragma: no cover - a system where even that is writable
        target.rmdir()
        pytest.skip("no unwritable folder on this system")
    if os.geteuid() != 0:
        (tmp_path / "ro").chmod(0o755)


def _size(path: Path) -> tuple[int, int]:
    info = probe_video(path)
    return info.width, info.height


def test_process_resizes_records_and_reruns_for_free(root, tmp_path) -> None:
    from kinetix.process.transcode import process_dataset

    out = tmp_path / "k400_64"
    report = process_dataset(root, out, ProcessConfig(short_side=64, workers=2, preset="ultrafast"))
    assert (report.planned, report.done) == (4, 3) and not report.errors
    assert report.failed == {"unreadable": 1}
    got = rows(out)
    assert set(got) == set(KEYS) - {KEYS[BAD], KEYS[GONE]}
    for i, size in [(WIDE, (86, 64)), (TALL, (64, 96)), (SMALL, (48, 40))]:  # never upscaled
        row = got[KEYS[i]]
        path = out / row["path"]
        assert row["path"] == rows(root)[KEYS[i]]["path"]  # same layout
        assert _size(path) == size == (row["width"], row["height"])
        assert (row["state"], row["source"], row["origin"]) == (
            "present", "derived", str(root / row["path"])
        )  # fmt: skip
        assert (
            row["num_frames"] == 50 and row["fps"] == 25.0 and row["bytes"] == path.stat().st_size
        )
    assert got[KEYS[WIDE]]["has_audio"] == 1 and got[KEYS[TALL]]["has_audio"] == 0
    failed = got[KEYS[HTML]]
    assert failed["state"] == "failed" and "not a readable video" in failed["error_message"]
    assert meta(out, "kind") == "videos" and meta(out, "source_root") == str(root)
    assert meta(out, "release") == "k400" and meta(out, "layout") == "raw"
    assert not list(partial_dir(out).iterdir())  # temp names renamed or removed

    mtime = (out / got[KEYS[WIDE]]["path"]).stat().st_mtime_ns
    again = process_dataset(root, out, ProcessConfig(short_side=64, workers=2, preset="ultrafast"))
    assert (again.planned, again.done, again.skipped, again.failed_before) == (0, 0, 3, 1)
    assert (out / got[KEYS[WIDE]]["path"]).stat().st_mtime_ns == mtime

    (out / got[KEYS[TALL]]["path"]).unlink()  # lost: redone, and only it
    (partial_dir(out) / "train.x.mp4").write_bytes(b"half")  # a killed run's temp file
    redo = process_dataset(root, out, ProcessConfig(short_side=64, workers=0, preset="ultrafast"))
    assert (redo.done, redo.redone, redo.skipped) == (1, 1, 2)
    assert not list(partial_dir(out).iterdir())


def test_fps_codec_audio_and_upscale(root, tmp_path) -> None:
    from kinetix.process.transcode import process_dataset

    out = tmp_path / "k400_10fps"
    config = ProcessConfig(
        short_side=80, upscale=True, fps=10, audio=False, codec="h265", preset="ultrafast",
        workers=0, retry_failed=True,
    )  # fmt: skip
    report = process_dataset(root, out, config)
    assert report.done == 3
    row = rows(out)[KEYS[SMALL]]
    assert (row["width"], row["height"], row["fps"], row["codec"]) == (96, 80, 10.0, "hevc")
    assert abs(row["num_frames"] - 20) <= 1 and row["has_audio"] == 0
    with av.open(str(out / row["path"])) as container:
        assert not container.streams.audio
        assert container.streams.video[0].codec_tag == "hvc1"


def test_other_settings_and_bad_outputs_are_refused(root, tmp_path, unwritable) -> None:
    from kinetix.process.frames import extract_dataset
    from kinetix.process.transcode import process_dataset

    out = tmp_path / "derived"
    process_dataset(root, out, ProcessConfig(short_side=64, workers=0, preset="ultrafast"))
    with pytest.raises(ConfigError, match=r"short_side 64 \(now 32\)"):
        process_dataset(root, out, ProcessConfig(short_side=32, workers=0))
    with pytest.raises(ConfigError, match="inside the source root"):
        process_dataset(root, root / "derived", ProcessConfig(workers=0))
    with pytest.raises(ConfigError, match="videos dataset"):
        extract_dataset(root, out, FramesConfig(workers=0))  # a videos root is not a frames root
    with pytest.raises(KinetixError, match="cannot write to"):
        process_dataset(root, unwritable, ProcessConfig(workers=0))
    with pytest.raises(ConfigError, match="valid values are"):
        ProcessConfig(preset="fastest")


def test_full_disk_stops_the_run_with_the_reason_recorded(root, tmp_path, monkeypatch) -> None:
    import kinetix.process.transcode as transcode

    def full(args: list[str], **kwargs: object) -> str:
        tail = "av_interleaved_write_frame(): No space left on device\n"
        raise FFmpegError(["ffmpeg", *args], 228, tail)

    monkeypatch.setattr(transcode, "run_ffmpeg", full)
    out = tmp_path / "full"
    report = transcode.process_dataset(root, out, ProcessConfig(workers=0))
    assert report.done == 0 and sum(report.failed.values()) == 1  # stopped at the first
    assert "no space left on device" in report.errors[0] and "rerun" in report.errors[0]
    failed = [r for r in rows(out).values() if r["state"] == "failed"]
    assert [r["error_code"] for r in failed] == ["no_space"]
    assert "No space left on device" in failed[0]["error_message"]


def test_threads_share_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert threads_per_job(None) == 1
    assert threads_per_job(0) == threads_per_job(1) == cores
    assert threads_per_job(10 * cores) == 1


def test_cli(root, tmp_path, capsys, unwritable) -> None:
    out = tmp_path / "k400_256"
    argv = ["process", str(root), "--out", str(out), "--preset", "ultrafast", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "3 clips made" in text and "failed: 1 clips (unreadable 1)" in text
    assert main(argv) == 0
    assert "0 clips made" in capsys.readouterr().out
    assert main(["process", str(root), "--out", str(unwritable), "--no-progress"]) == 2
    assert "cannot write to" in capsys.readouterr().err
