"""Cut one clip out of a fetched section: exact (re-encode from the frame at the start) or fast.

The section is a stream copy of the source around the clip whose timestamps are the source's
own (the YouTube source fetches it with ``-copyts``), so ``start`` and ``end`` are seconds of
the source video. ``exact`` decodes and re-encodes: the first frame is the first one at or
after ``start`` and the clip holds every frame before ``end``. ``fast`` copies the video from
the last keyframe at or before ``start``, so no frame is hidden behind an MP4 edit list (which
decord ignores, showing the hidden frames as real ones); the keyframe's distance from
``start`` is returned as ``start_offset`` for the manifest and the loaders.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from kinetix.config import TrimMode
from kinetix.errors import ErrorCode, SourceError
from kinetix.process.ffmpeg import run_ffmpeg

log = logging.getLogger(__name__)

# x264 at crf 20 keeps re-encoded clips close to YouTube's own quality at a modest size;
# veryfast because every exact clip is encoded once per download, on the download machine.
EXACT_VIDEO_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p")
AUDIO_ARGS = ("-c:a", "aac", "-b:a", "128k")
_COPYABLE_VIDEO = frozenset({"h264"})
_COPYABLE_AUDIO = frozenset({"aac"})
_MAX_REORDER = 4  # frames a stream copy may carry past the end (H.264 B-frame delay)


@dataclass(frozen=True)
class SectionInfo:
    """Frame times of a fetched section, read from its packets (nothing is decoded)."""

    frame_times: tuple[float, ...]  # presentation time of every shown video frame, sorted
    keyframes: tuple[float, ...]
    fps: float
    codec: str
    width: int
    height: int
    audio_codec: str | None
    hidden: int = 0  # frames an MP4 edit list hides (decoded but never shown)

    @property
    def step(self) -> float:
        """The usual distance between frames."""
        if len(self.frame_times) > 1:
            gaps = sorted(b - a for a, b in zip(self.frame_times, self.frame_times[1:]))
            return gaps[len(gaps) // 2]
        return 1.0 / self.fps if self.fps else 0.04

    @property
    def end(self) -> float:
        """When the last frame stops being shown."""
        return self.frame_times[-1] + self.step if self.frame_times else 0.0

    def tolerance(self) -> float:
        """How far a timestamp may be off from a whole frame and still be that frame."""
        return min(1e-3, self.step / 4)

    def frames_between(self, start: float, end: float) -> list[float]:
        """The frames shown from ``start`` (inclusive) to ``end`` (exclusive), allowing rounding."""
        tol = self.tolerance()
        return [t for t in self.frame_times if start - tol <= t < end - tol]


@dataclass(frozen=True)
class TrimmedClip:
    """What ``trim_clip`` wrote."""

    mode: TrimMode  # exact when a fast trim had to re-encode (a non-H.264 source)
    start_offset: float  # first frame's time minus the requested start, seconds
    duration: float  # seconds of video in the clip
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    has_audio: bool

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "trim": self.mode.value,
            "start_offset": round(self.start_offset, 6),
            "duration": round(self.duration, 6),
            "num_frames": self.num_frames,
            "fps": round(self.fps, 4),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "has_audio": int(self.has_audio),
        }


def _seconds(value: Any, time_base: Any) -> float:
    return float(value * time_base)


def read_section(path: str | os.PathLike[str]) -> SectionInfo:
    """Frame times, keyframes and codecs of ``path`` from its packet index."""
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise SourceError(
            f"the fetched section is not a readable video ({exc})", code=ErrorCode.NETWORK
        ) from None
    with container:
        if not container.streams.video:
            raise SourceError("the fetched section has no video stream", code=ErrorCode.NETWORK)
        stream = container.streams.video[0]
        tb = stream.time_base
        times: list[float] = []
        keys: list[float] = []
        hidden = 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue  # the demuxer's flush packet
            if packet.is_discard:
                hidden += 1
                continue
            t = _seconds(packet.pts, tb)
            times.append(t)
            if packet.is_keyframe:
                keys.append(t)
        rate = stream.average_rate or stream.guessed_rate
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return SectionInfo(
            frame_times=tuple(sorted(times)),
            keyframes=tuple(sorted(keys)),
            fps=float(rate) if rate else 0.0,
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            audio_codec=audio,
            hidden=hidden,
        )


def _too_short(info: SectionInfo, start: float) -> SourceError:
    if not info.frame_times:
        return SourceError("the fetched section holds no video frames", code=ErrorCode.NETWORK)
    return SourceError(
        f"the video ends at {info.end:.2f} s, before the clip's start at {start:g} s",
        code=ErrorCode.TOO_SHORT,
    )


def trim_clip(
    section: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    start: float,
    end: float,
    mode: TrimMode = TrimMode.EXACT,
    *,
    audio: bool = True,
    info: SectionInfo | None = None,
) -> TrimmedClip:
    """Write the clip ``[start, end)`` of ``section`` to ``dest`` (mp4, H.264) and check it.

    A video that ends before ``end`` gives a shorter clip (the annotations allow it); one that
    ends before ``start`` raises ``SourceError(too_short)``.
    """
    info = info or read_section(section)
    mode = TrimMode(mode)
    if mode is TrimMode.FAST and info.codec not in _COPYABLE_VIDEO:
        log.info("%s is %s, not H.264: re-encoding instead of a fast trim", section, info.codec)
        mode = TrimMode.EXACT
    keep_audio = audio and info.audio_codec is not None
    if mode is TrimMode.EXACT:
        frames = info.frames_between(start, end)
        if not frames:
            raise _too_short(info, start)
        _encode_exact(Path(section), Path(dest), frames, info, keep_audio)
    else:
        frames = _fast_frames(info, start, end)
        _copy_fast(Path(section), Path(dest), frames, info, keep_audio)
    return _check_output(Path(dest), mode, frames, start, info, keep_audio)


def _encode_exact(
    section: Path, dest: Path, frames: list[float], info: SectionInfo, keep_audio: bool
) -> None:
    tol = info.tolerance()
    first, last = frames[0], frames[-1]
    # -copyts: the filters see the section's own (source) timestamps, the ones ``frames``
    # came from; the trim bounds sit half a tolerance around them, so rounding in the
    # container's time base can neither drop the first frame nor let in the next one.
    graph = f"[0:v:0]trim=start={first - tol:.6f}:end={last + tol:.6f},setpts=PTS-STARTPTS[v]"
    maps = ["-map", "[v]"]
    if keep_audio:
        graph += (
            f";[0:a:0]atrim=start={first:.6f}:end={last + info.step:.6f},asetpts=PTS-STARTPTS[a]"
        )
        maps += ["-map", "[a]"]
    args = ["-copyts", "-i", "file:" + str(section), "-filter_complex", graph, *maps]
    args += ["-fps_mode", "passthrough", *EXACT_VIDEO_ARGS]
    if keep_audio:
        args += AUDIO_ARGS
    args += ["-movflags", "+faststart", "-f", "mp4", "-y", "file:" + str(dest)]
    run_ffmpeg(args)


def _fast_frames(info: SectionInfo, start: float, end: float) -> list[float]:
    """The frames a fast clip holds: from the last keyframe at or before ``start`` to ``end``."""
    tol = info.tolerance()
    earlier = [k for k in info.keyframes if k <= start + tol]
    if earlier:
        key = earlier[-1]
    else:  # the section begins after start (start < 0 never happens); take what there is
        later = [k for k in info.keyframes if k < end - tol]
        if not later:
            raise _too_short(info, start)
        key = later[0]
    frames = info.frames_between(key, end)
    if not frames or (info.frame_times and info.end <= start + tol):
        raise _too_short(info, start)
    return frames


def _copy_fast(
    section: Path, dest: Path, frames: list[float], info: SectionInfo, keep_audio: bool
) -> None:
    key = frames[0]
    # -ss on a keyframe's own time (-seek_timestamp: as an absolute time, not one relative to
    # the file's start) makes that keyframe the first packet with pts 0: nothing before it is
    # kept, so the muxer needs no edit list to hide anything.
    args = ["-ss", f"{key:.6f}", "-seek_timestamp", "1", "-i", "file:" + str(section)]
    args += ["-t", f"{frames[-1] + info.step / 2 - key:.6f}", "-map", "0:v:0", "-c:v", "copy"]
    if keep_audio:
        args += ["-map", "0:a:0"]
        args += ["-c:a", "copy"] if info.audio_codec in _COPYABLE_AUDIO else list(AUDIO_ARGS)
    args += ["-movflags", "+faststart", "-f", "mp4", "-y", "file:" + str(dest)]
    run_ffmpeg(args)


def _check_output(
    dest: Path,
    mode: TrimMode,
    frames: list[float],
    start: float,
    section: SectionInfo,
    keep_audio: bool,
) -> TrimmedClip:
    """Read back what ffmpeg wrote: every expected frame, the first one at time 0, none hidden."""
    try:
        out = read_section(dest)
    except SourceError as exc:
        message = f"ffmpeg wrote an unreadable clip: {exc}"
        raise SourceError(message, code=ErrorCode.FFMPEG_FAILED) from None
    problems = []
    got = len(out.frame_times)
    if mode is TrimMode.EXACT and got != len(frames):
        problems.append(f"{got} frames where {len(frames)} were expected")
    # A stream copy must end on a packet boundary in decode order, so B-frame reordering may
    # carry a frame or two past ``end``; it must never lose one.
    if mode is TrimMode.FAST and not len(frames) <= got <= len(frames) + _MAX_REORDER:
        problems.append(
            f"{got} frames where {len(frames)} to {len(frames) + _MAX_REORDER} were expected"
        )
    if out.frame_times and abs(out.frame_times[0]) > section.tolerance():
        problems.append(f"the first frame is at {out.frame_times[0]:.4f} s, not 0")
    if out.hidden:
        problems.append(f"{out.hidden} frames hidden by an edit list")
    if mode is TrimMode.FAST and (not out.keyframes or out.keyframes[0] != out.frame_times[0]):
        problems.append("the clip does not start on a keyframe")
    if problems:
        raise SourceError(
            f"the {mode.value} trim came out wrong: {'; '.join(problems)}",
            code=ErrorCode.FFMPEG_FAILED,
        )
    return TrimmedClip(
        mode=mode,
        start_offset=frames[0] - start,
        duration=out.end,
        num_frames=got,
        fps=out.fps or section.fps,
        width=out.width,
        height=out.height,
        codec=out.codec,
        has_audio=keep_audio and out.audio_codec is not None,
    )
