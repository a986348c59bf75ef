"""Exact and fast trims of a fetched section: right first frame, right length, nothing hidden."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from kinetix.config import TrimMode
from kinetix.errors import ErrorCode, SourceError
from kinetix.process.ffmpeg import run_ffmpeg
from kinetix.process.trim import read_section, trim_clip
from kinetix.synthetic.media import VideoSpec, frame_index, make_video

# ultrafast: no B-frames; veryfast: B-frames, so decode order differs from display order
SOURCES = {
    "plain": VideoSpec(duration=30, fps=10, width=96, height=72, gop=25, preset="ultrafast"),
    "bframes": VideoSpec(duration=30, fps=25, width=96, height=72, gop=50, preset="veryfast"),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trim-sources")
    return {name: make_video(folder / f"{name}.mp4", spec) for name, spec in SOURCES.items()}


def fetch_section(src: Path, start: float, end: float, dest: Path) -> Path:
    """What yt-dlp's ffmpeg downloader writes for ``download_ranges`` (plus kinetix's -copyts)."""
    args = ["-ss", str(start), "-t", str(end - start), "-copyts", "-xerror"]
    run_ffmpeg(
        [*args, "-i", "file:" + str(src), "-c", "copy", "-f", "mp4", "-y", "file:" + str(dest)]
    )
    return dest


def decoded_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def video_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(container.streams.video[0]) if p.pts is not None]


def keyframe_before(spec: VideoSpec, t: float) -> float:
    gop_seconds = spec.gop / spec.fps  # type: ignore[operator]
    return (t // gop_seconds) * gop_seconds


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize(("start", "end"), [(12, 22), (5.2, 15.2), (0, 10)])
def test_exact_starts_at_the_frame_at_time_start(
    sources: dict[str, Path], tmp_path: Path, name: str, start: float, end: float
) -> None:
    spec = SOURCES[name]
    section = fetch_section(sources[name], start, end + 0.5, tmp_path / "section.mp4")
    clip = trim_clip(section, tmp_path / "clip.mp4", start, end, TrimMode.EXACT)
    frames = decoded_indices(tmp_path / "clip.mp4")
    first = round(start * spec.fps)
    expected = round((end - start) * spec.fps)
    assert frames[0] == first  # start error: 0 frames
    assert abs(len(frames) - expected) <= 1  # duration error: at most one frame
    assert frames == list(range(first, first + len(frames)))  # nothing dropped or repeated
    assert clip.mode is TrimMode.EXACT and clip.start_offset == pytest.approx(0, abs=1e-3)
    assert clip.num_frames == len(frames)
    assert clip.duration == pytest.approx(end - start, abs=1 / spec.fps)
    assert clip.codec == "h264" and clip.has_audio
    packets = video_packets(tmp_path / "clip.mp4")
    assert not any(p.is_discard for p in packets)


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize("start", [12.0, 13.7, 10.0])
def test_fast_starts_on_the_keyframe_and_records_its_offset(
    sources: dict[str, Path], tmp_path: Path, name: str, start: float
) -> None:
    spec = SOURCES[name]
    end = start + 10
    section = fetch_section(sources[name], start, end + 0.5, tmp_path / "section.mp4")
    clip = trim_clip(section, tmp_path / "clip.mp4", start, end, TrimMode.FAST)
    key = keyframe_before(spec, start)
    assert clip.mode is TrimMode.FAST
    assert clip.start_offset == pytest.approx(key - start, abs=1e-3)
    frames = decoded_indices(tmp_path / "clip.mp4")
    assert frames[0] == round(key * spec.fps)
    assert frames[: round((end - key) * spec.fps)] == list(
        range(round(key * spec.fps), round(end * spec.fps))
    )
    # no edit list hides frames: every packet is shown, the first is the keyframe at 0
    packets = video_packets(tmp_path / "clip.mp4")
    assert not any(p.is_discard for p in packets)
    first = min(packets, key=lambda p: p.pts)
    assert first.pts == 0 and first.is_keyframe
    assert len(packets) == len(frames) == clip.num_frames


def test_fast_clip_reads_right_in_decord(sources: dict[str, Path], tmp_path: Path) -> None:
    decord = pytest.importorskip("decord")
    spec = SOURCES["bframes"]
    section = fetch_section(sources["bframes"], 13.7, 24.2, tmp_path / "section.mp4")
    clip = trim_clip(section, tmp_path / "clip.mp4", 13.7, 23.7, TrimMode.FAST)
    reader = decord.VideoReader(str(tmp_path / "clip.mp4"))
    assert len(reader) == clip.num_frames
    assert frame_index(reader[0].asnumpy()) == round(keyframe_before(spec, 13.7) * spec.fps)
    last = round((13.7 + clip.start_offset) * spec.fps) + 100
    assert frame_index(reader[100].asnumpy()) == last


def test_a_plain_stream_copy_cut_hides_frames_that_decord_shows(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    """The field fact the fast trim avoids: ``ffmpeg -ss … -c copy`` hides a preroll."""
    decord = pytest.importorskip("decord")
    naive = tmp_path / "naive.mp4"
    run_ffmpeg(["-ss", "12", "-t", "10", "-i", "file:" + str(sources["plain"]), "-c", "copy",
                "-f", "mp4", "-y", "file:" + str(naive)])  # fmt: skip
    hidden = sum(p.is_discard for p in video_packets(naive))
    assert hidden == 20  # the 2 s from the keyframe at 10 s to 12 s
    assert len(decoded_indices(naive)) == 100
    assert len(decord.VideoReader(str(naive))) == 120  # decord counts the hidden ones


def test_a_video_that_ends_inside_the_clip_gives_a_shorter_clip(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    section = fetch_section(sources["plain"], 25, 35.5, tmp_path / "section.mp4")
    for mode in TrimMode:
        clip = trim_clip(section, tmp_path / f"{mode.value}.mp4", 25, 35, mode)
        assert clip.duration == pytest.approx(5.0)
        assert decoded_indices(tmp_path / f"{mode.value}.mp4")[-1] == 299


@pytest.mark.parametrize("mode", list(TrimMode))
def test_a_video_shorter_than_time_start_is_too_short(
    sources: dict[str, Path], tmp_path: Path, mode: TrimMode
) -> None:
    section = fetch_section(sources["plain"], 40, 50.5, tmp_path / "section.mp4")
    with pytest.raises(SourceError, match=r"ends at 30\.00 s") as err:
        trim_clip(section, tmp_path / "clip.mp4", 40, 50, mode)
    assert err.value.code is ErrorCode.TOO_SHORT
    assert not (tmp_path / "clip.mp4").exists()


def test_fast_falls_back_to_exact_for_codecs_mp4_players_cannot_copy_as_h264(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    mpeg4 = tmp_path / "mpeg4.mp4"
    run_ffmpeg(["-i", "file:" + str(sources["plain"]), "-c:v", "mpeg4", "-q:v", "2", "-g", "25",
                "-c:a", "copy", "-f", "mp4", "-y", "file:" + str(mpeg4)])  # fmt: skip
    section = fetch_section(mpeg4, 12, 22.5, tmp_path / "section.mp4")
    assert read_section(section).codec == "mpeg4"
    clip = trim_clip(section, tmp_path / "clip.mp4", 12, 22, TrimMode.FAST)
    assert clip.mode is TrimMode.EXACT and clip.codec == "h264"
    assert decoded_indices(tmp_path / "clip.mp4")[0] == 120


def test_audio_can_be_dropped(sources: dict[str, Path], tmp_path: Path) -> None:
    section = fetch_section(sources["plain"], 12, 22.5, tmp_path / "section.mp4")
    for mode in TrimMode:
        clip = trim_clip(section, tmp_path / f"{mode.value}.mp4", 12, 22, mode, audio=False)
        assert not clip.has_audio
        with av.open(str(tmp_path / f"{mode.value}.mp4")) as container:
            assert not container.streams.audio


def test_section_reports_source_timestamps(sources: dict[str, Path], tmp_path: Path) -> None:
    info = read_section(fetch_section(sources["plain"], 12, 22.5, tmp_path / "section.mp4"))
    # the seek landed on the keyframe at 10 s and -copyts kept the source's clock
    assert info.frame_times[0] == pytest.approx(10.0)
    assert info.keyframes[:3] == pytest.approx((10.0, 12.5, 15.0))
    assert info.fps == 10 and info.codec == "h264" and info.audio_codec == "aac"
    assert info.frames_between(12, 22)[0] == pytest.approx(12.0)
    assert len(info.frames_between(12, 22)) == 100
