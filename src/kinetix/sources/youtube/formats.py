"""Which of a video's formats a clip is cut from, and the Range request sizes ffmpeg asks with."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from typing import Any

from kinetix.config import YoutubeConfig
from kinetix.process.ffmpeg import find_ffmpeg

MAX_HEIGHT = 720  # without --short-side: the largest format whose short side is at most this


def _is_http(fmt: dict[str, Any]) -> bool:
    from yt_dlp.utils import determine_protocol

    if not fmt.get("protocol") and not fmt.get("url"):
        return False
    return determine_protocol(fmt) in ("http", "https")


def _has_video(fmt: dict[str, Any]) -> bool:
    return fmt.get("vcodec") != "none" and fmt.get("ext") not in ("mhtml", None)


def _has_audio(fmt: dict[str, Any]) -> bool:
    return fmt.get("acodec") not in ("none",)


def _is_h264(fmt: dict[str, Any]) -> bool:
    codec = str(fmt.get("vcodec") or "")
    return codec.startswith(("avc1", "avc3", "h264"))


def _short_side(fmt: dict[str, Any]) -> int | None:
    w, h = fmt.get("width"), fmt.get("height")
    if w and h:
        return int(min(w, h))
    return int(h) if h else None


def choose_formats(
    formats: Sequence[dict[str, Any]], short_side: int | None, audio: bool = True
) -> list[dict[str, Any]]:
    """The formats to fetch: one video format, plus an audio-only one when it has no sound.

    Only plain HTTP(S) formats qualify: ffmpeg seeks in them with Range requests (manifests
    would fetch whole segments). H.264 in mp4 is preferred (a fast trim can copy it); then
    with ``short_side`` the smallest format whose short side is at least that, else the
    largest up to ``MAX_HEIGHT``. Formats without a known size (a direct file) come last.
    """
    videos = [f for f in formats if _has_video(f) and _is_http(f)]
    if not videos:
        return []
    h264 = [f for f in videos if _is_h264(f)]
    pool = h264 or videos

    def key(f: dict[str, Any]) -> tuple[Any, ...]:
        side = _short_side(f)
        mp4 = f.get("ext") == "mp4"
        tbr = float(f.get("tbr") or 0)
        if side is None:  # unknown size: only when nothing else is there
            return (2, 0, not mp4, tbr)
        if short_side is not None:
            if side >= short_side:
                return (0, side, not mp4, tbr)  # the smallest big-enough
            return (1, -side, not mp4, tbr)  # else the biggest there is
        if side <= MAX_HEIGHT:
            return (0, -side, not mp4, tbr)  # the biggest up to MAX_HEIGHT
        return (1, side, not mp4, tbr)  # else the smallest above it

    video = min(pool, key=key)
    muxed_or_unknown = _has_audio(video)  # "acodec" missing means a direct file: maybe muxed
    if not audio or muxed_or_unknown:
        return [video]
    audios = [f for f in formats if not _has_video(f) and _has_audio(f) and _is_http(f)]
    if not audios:
        return [video]

    def audio_key(f: dict[str, Any]) -> tuple[Any, ...]:
        aac = str(f.get("acodec") or "").startswith("mp4a")
        # The best AAC up to 160 kbit/s: more is wasted on a training clip.
        abr = float(f.get("abr") or f.get("tbr") or 0)
        return (not aac, abr > 160, -abr)

    return [video, min(audios, key=audio_key)]


def merged_format(chosen: list[dict[str, Any]]) -> dict[str, Any]:
    """The dict yt-dlp expects for ``video+audio`` (what its own selector's merge builds)."""
    if len(chosen) == 1:
        return chosen[0]
    from yt_dlp.utils import determine_protocol, get_compatible_ext

    video, audio = chosen
    ext = get_compatible_ext(
        vcodecs=[video.get("vcodec")],
        acodecs=[audio.get("acodec")],
        vexts=[video["ext"]],
        aexts=[audio["ext"]],
    )
    return {
        "requested_formats": chosen,
        "format": f"{video.get('format')}+{audio.get('format')}",
        "format_id": f"{video['format_id']}+{audio['format_id']}",
        "ext": ext,
        "protocol": "+".join(determine_protocol(f) for f in chosen),
        "width": video.get("width"),
        "height": video.get("height"),
        "fps": video.get("fps"),
        "vcodec": video.get("vcodec"),
        "acodec": audio.get("acodec"),
        "tbr": sum(float(f.get("tbr") or 0) for f in chosen) or None,
    }


@functools.lru_cache(maxsize=1)
def ffmpeg_has_request_size() -> bool:
    """Whether ffmpeg's HTTP client can bound its Range requests (FFmpeg 8+).

    Without ``request_size`` ffmpeg asks for open-ended ranges ("bytes=N-") and drops the
    connection when it has enough; whatever the server had in flight is transferred for nothing.
    """
    try:
        proc = subprocess.run(
            [find_ffmpeg().path, "-hide_banner", "-h", "protocol=http"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"request_size" in proc.stdout + proc.stderr


class FormatPicker:
    """The ``format`` callable handed to yt-dlp; remembers its choice for diagnosing failures."""

    def __init__(self, config: YoutubeConfig, span: float, ffmpeg_args: list[str]):
        self.config = config
        self.span = span
        self.ffmpeg_args = ffmpeg_args  # the list yt-dlp passes before each ffmpeg -i
        self.chosen: list[dict[str, Any]] = []

    def __call__(self, ctx: dict[str, Any]) -> list[dict[str, Any]]:
        self.chosen = choose_formats(
            ctx.get("formats") or [], self.config.short_side, self.config.audio
        )
        if not self.chosen:
            return []  # yt-dlp then raises "Requested format is not available"
        if ffmpeg_has_request_size() and "-request_size" not in self.ffmpeg_args:
            self.ffmpeg_args += ["-multiple_requests", "1", *self._request_sizes()]
        return [merged_format(self.chosen)]

    def _request_sizes(self) -> list[str]:
        # The last request overshoots the section's end by up to one request, so requests are
        # about an eighth of the section when the bitrate is known (at most ~12% wasted, a
        # dozen requests on one keep-alive connection); 256 KiB when it is not.
        kbps = sum(float(f.get("tbr") or 0) for f in self.chosen)
        size = 256 << 10
        if kbps:
            size = int(min(max(kbps * 125 * self.span / 8, 128 << 10), 1 << 20))
        return ["-request_size", str(size), "-initial_request_size", str(64 << 10)]
