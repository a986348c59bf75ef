"""Probing and decode checks: what a clip is, and a stable reason for every way it can be broken."""

from __future__ import annotations

import shutil

import av
import pytest
from _dataset import SPEC, media
from av.video.frame import PictureType

from kinetix.config import VerifyConfig, VerifyLevel
from kinetix.errors import ErrorCode, MediaError
from kinetix.process.ffmpeg import run_ffmpeg
from kinetix.process.filters import video_filters
from kinetix.process.probe import VideoInfo, probe_video
from kinetix.process.verify import check_span, check_video
from kinetix.synthetic.media import corrupt_video


def test_probe_reads_the_index(tmp_path) -> None:
    info = probe_video(media(SPEC))
    assert (info.width, info.height, info.fps, info.num_frames) == (64, 80, 25.0, 50)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.codec == "h264" and info.has_audio
    silent = probe_video(media(SPEC.with_(audio=False)))
    assert not silent.has_audio


@pytest.mark.parametrize("level", list(VerifyLevel))
def test_good_clip_decodes_end_to_end(level) -> None:
    info = check_video(media(SPEC), level)
    assert info.num_frames == 50
    assert info.duration == pytest.approx(2.0, abs=1e-6)
    assert info.manifest_fields()["has_audio"] == 1


@pytest.mark.parametrize(
    ("how", "faststart", "code", "words"),
    [
        ("empty", True, ErrorCode.EMPTY_FILE, "empty"),
        ("html", True, ErrorCode.UNREADABLE, "not a readable video"),
        ("garbage", True, ErrorCode.UNREADABLE, "not a readable video"),
        ("truncate", False, ErrorCode.UNREADABLE, "moov atom not found"),
        ("truncate", True, ErrorCode.TRUNCATED, "cut short"),
    ],
)
@pytest.mark.parametrize("level", list(VerifyLevel))
def test_every_damage_has_a_code(tmp_path, how, faststart, code, words, level) -> None:
    path = tmp_path / "-clip.mp4"  # a leading dash must never read as an option
    shutil.copyfile(media(SPEC.with_(faststart=faststart)), path)
    corrupt_video(path, how, keep=0.5)
    with pytest.raises(MediaError) as err:
        check_video(path, level)
    assert err.value.code is code
    assert words in err.value.reason
    assert str(err.value).startswith(str(path))


def test_a_cut_in_the_last_packet_is_truncated(tmp_path) -> None:
    path = tmp_path / "c.mp4"
    shutil.copyfile(media(SPEC), path)
    corrupt_video(path, "truncate", keep=0.995)
    with pytest.raises(MediaError) as err:
        check_video(path)
    assert err.value.code is ErrorCode.TRUNCATED


def test_quick_tail_without_deblocking_or_unreferenced_frames_finds_the_same_end(tmp_path) -> None:
    """The quick check skips deblocking and non-reference frames before its last packets, yet
    on a one-keyframe clip with B-frames it reports the end a full decode finds, and a clip cut
    inside that tail is still cut short."""
    spec = SPEC.with_(duration=4.0, gop=250, preset="medium", pattern="scene", width=128, height=96)
    with av.open(str(media(spec))) as container:
        kinds = {PictureType(frame.pict_type).name for frame in container.decode(video=0)}
    assert "B" in kinds  # frames no other frame refers to, for the tail to drop
    quick = check_video(media(spec), VerifyLevel.QUICK)
    deep = check_video(media(spec), VerifyLevel.DEEP)
    assert quick.num_frames == deep.num_frames == 100
    assert quick.duration == pytest.approx(deep.duration, abs=1e-6)
    path = tmp_path / "cut.mp4"
    shutil.copyfile(media(spec), path)
    corrupt_video(path, "truncate", keep=0.97)
    with pytest.raises(MediaError) as err:
        check_video(path, VerifyLevel.QUICK)
    assert err.value.code is ErrorCode.TRUNCATED


def test_audio_only_file_has_zero_frames(tmp_path) -> None:
    path = tmp_path / "a.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", "-f", "mp4", "file:" + str(path)])
    with pytest.raises(MediaError) as err:
        probe_video(path)
    assert err.value.code is ErrorCode.ZERO_FRAMES and "no video stream" in err.value.reason


def test_edit_list_frames_are_not_counted(tmp_path) -> None:
    """A fast YouTube trim keeps frames before the cut behind an edit list; players hide them."""
    cut = tmp_path / "cut.mp4"
    run_ffmpeg(["-ss", "0.5", "-i", str(media(SPEC)), "-c", "copy", "-y", str(cut)])
    with av.open(str(cut)) as container:
        shown = sum(1 for _ in container.decode(video=0))
        stored = container.streams.video[0].frames
    assert stored > shown  # the index holds the hidden frames too
    assert check_video(cut, VerifyLevel.QUICK).num_frames == shown
    assert check_video(cut, VerifyLevel.DEEP).num_frames == shown


def _info(duration: float) -> VideoInfo:
    return VideoInfo("mp4", "h264", 64, 80, 25.0, duration, round(duration * 25), True)


def test_span_check_allows_early_end_but_not_untrimmed() -> None:
    config = VerifyConfig()
    check_span("x", _info(10.0), 10, 0.0, config)
    check_span("x", _info(6.2), 10, 0.0, config)  # the YouTube video ended early (K700 has many)
    check_span("x", _info(14.0), 10, -3.0, config)  # fast trim: starts 3 s early, at a keyframe
    with pytest.raises(MediaError, match="not trimmed"):
        check_span("x", _info(14.0), 10, 0.0, config)  # without that offset it is too long
    with pytest.raises(MediaError, match="not trimmed") as err:
        check_span("x", _info(185.0), 10, 0.0, config)
    assert err.value.code is ErrorCode.BAD_DURATION
    with pytest.raises(MediaError, match="at least"):
        check_span("x", _info(0.4), 10, 0.0, config)


def test_filter_chain_keeps_aspect_and_never_upscales(tmp_path) -> None:
    assert video_filters() is None
    chain = video_filters(fps=10, short_side=32)
    assert chain is not None and chain.startswith("fps=10,scale=")
    for w, h, side, upscale, want in [
        (160, 120, 64, False, (86, 64)),  # landscape: height 64, width even
        (64, 96, 32, False, (32, 48)),  # portrait: width is the short side
        (64, 80, 128, False, (64, 80)),  # smaller than asked: kept
        (64, 80, 128, True, (128, 160)),
    ]:
        src = media(SPEC.with_(width=w, height=h, duration=0.2, audio=False))
        out = tmp_path / f"{w}x{h}-{side}-{upscale}.mp4"
        vf = video_filters(short_side=side, upscale=upscale)
        assert vf is not None
        run_ffmpeg(["-i", str(src), "-vf", vf, "-c:v", "libx264", "-f", "mp4", str(out)])
        info = probe_video(out)
        assert (info.width, info.height) == want


def test_looks_like_media_tells_containers_from_pages_and_junk(tmp_path) -> None:
    import random

    from kinetix.process.probe import looks_like_media

    clip = media(SPEC).read_bytes()
    assert looks_like_media(clip[:4096])
    webm = tmp_path / "c.webm"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=1", "-c:v", "libvpx",
                "-y", str(webm)])  # fmt: skip
    assert looks_like_media(webm.read_bytes()[:4096])
    assert not looks_like_media(b"<!DOCTYPE html><html><body>Error 403</body></html>")
    assert not looks_like_media(random.Random(1).randbytes(4096))
    assert not looks_like_media(b"")


def test_quiet_libav_in_overlapping_threads_restores_the_log_level() -> None:
    # Inline checks run quiet_libav in several threads at once. Entered A, B and left A, B, a
    # per-call save/restore left libav's level at ERROR for good, which routes every later
    # decoder's log through Python (the frame-thread deadlock of PyAV #909).
    import threading

    import av.logging

    from kinetix.process.probe import quiet_libav

    before = av.logging.get_level()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with quiet_libav():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with quiet_libav():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert av.logging.get_level() == before
