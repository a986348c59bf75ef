"""Open a clip with PyAV and read its container and stream facts; failures become error codes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import av
import av.logging

from kinetix.errors import ErrorCode, MediaError


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is, as the manifest records it (``verify``) and later stages read it."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration: float  # seconds
    num_frames: int
    has_audio: bool

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "duration": round(self.duration, 4),
            "fps": round(self.fps, 4),
            "width": self.width,
            "height": self.height,
            "num_frames": self.num_frames,
            "codec": self.codec,
            "has_audio": int(self.has_audio),
        }


def libav_reason(exc: av.FFmpegError) -> str:
    """The telling part of a PyAV error: libav's last log line (``moov atom not found``)."""
    log = getattr(exc, "log", None)
    if log and len(log) == 3 and log[2]:
        return str(log[2]).strip()
    return exc.strerror or str(exc)


_quiet_lock = threading.Lock()
_quiet_depth = 0  # callers inside quiet_libav right now, in any thread
_quiet_previous: int | None = None


@contextmanager
def quiet_libav() -> Iterator[None]:
    """Keep libav's error log for exceptions (``exc.log``) without letting it reach stderr.

    PyAV only fills ``exc.log`` when its log level lets errors through, and then forwards
    them to Python logging; capturing while we work keeps a bad clip to one line of ours.
    """
    # The level is process-wide and this runs in several threads at once (inline checks during
    # a download): a plain save/restore per call can interleave and leave it at ERROR for good,
    # and with libav's log routed to Python a frame-threaded decoder can deadlock when it is
    # freed (PyAV #909). So the first caller in sets it and the last one out restores it.
    global _quiet_depth, _quiet_previous
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_previous = av.logging.get_level()
            av.logging.set_level(av.logging.ERROR)
        _quiet_depth += 1
    try:
        with av.logging.Capture(local=True):
            yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                av.logging.set_level(_quiet_previous)


@contextmanager
def open_video(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Open ``path`` for decoding; an empty or non-video file raises ``MediaError``."""
    name = os.path.abspath(path)
    try:
        size = os.path.getsize(name)
    except OSError as exc:
        raise MediaError(name, f"cannot read: {exc.strerror}", code=ErrorCode.UNREADABLE) from None
    if size == 0:
        raise MediaError(name, "the file is empty (0 bytes)", code=ErrorCode.EMPTY_FILE)
    with quiet_libav():
        try:
            container = av.open(name, mode="r")
        except av.FFmpegError as exc:
            reason = f"not a readable video ({libav_reason(exc)})"
            raise MediaError(name, reason, code=ErrorCode.UNREADABLE) from None
        try:
            yield container
        finally:
            container.close()


def read_info(container: Any) -> VideoInfo:
    """Facts from the container index alone (no decoding); no video stream is ``zero_frames``."""
    if not container.streams.video:
        reason = f"has no video stream ({container.format.name})"
        raise MediaError(container.name, reason, code=ErrorCode.ZERO_FRAMES)
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frames = stream.frames or (round(duration * fps) if fps else 0)
    return VideoInfo(
        container=container.format.name,
        codec=stream.codec_context.name,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=fps,
        duration=duration,
        num_frames=frames,
        has_audio=bool(container.streams.audio),
    )


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Container and stream facts of ``path`` without decoding a frame (about a millisecond)."""
    with open_video(path) as container:
        return read_info(container)


# ISO BMFF box types that can open an MP4/MOV/3GP file or a fragment of one.
_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"sidx")


def looks_like_media(head: bytes) -> bool:
    """Whether the first bytes of a body are a media container (MP4/MOV, WebM/MKV, FLV, TS ...).

    A cheap answer to "did the server send a video at all?" when ffmpeg only says it failed:
    an HTML error page or junk in place of a video is a different failure from a dropped
    connection (it is not worth retrying, and not a sign of throttling).
    """
    if len(head) >= 8 and head[4:8] in _BMFF_BOXES:
        return True
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba")):
        return True
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WAVE"):
        return True
    # MPEG-TS: a sync byte every 188 bytes.
    return len(head) >= 377 and head[0] == head[188] == head[376] == 0x47
