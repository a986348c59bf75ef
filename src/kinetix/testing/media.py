"""Tiny real videos for tests, benchmarks and the synthetic mirror, with known fps and frame count.

The ``index`` pattern paints each frame's number into five horizontal bands of flat grey
(three bits a band, 32 grey levels apart), so a decoded frame says which source frame it is:
``frame_index(frame)`` reads it back, which lets tests check where a trim really starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kinetix.errors import ConfigError
from kinetix.process.ffmpeg import run_ffmpeg

PATTERNS = ("index", "testsrc", "noise")
_BANDS = 5  # 5 bands x 3 bits: frame numbers up to 32767 (21 min at 25 fps)
_LEVELS = 8
_STEP = 32


@dataclass(frozen=True)
class VideoSpec:
    """What ``make_video`` writes: an H.264 mp4 of ``duration * fps`` frames, AAC audio optional."""

    duration: float = 10.0
    fps: int = 25
    width: int = 320
    height: int = 240
    audio: bool = True
    pattern: str = "index"  # index | testsrc | noise (noise gives realistic bitrates)
    gop: int | None = None  # keyframe every N frames; None keeps x264's default (250)
    crf: int = 28
    bitrate: str | None = None  # e.g. "1M": constant-ish size for benchmarks (overrides crf)
    preset: str = "ultrafast"
    faststart: bool = True  # moov before mdat, as YouTube/CVDF files have
    comment: str | None = None  # container metadata; makes otherwise equal clips distinct

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ConfigError(f"unknown pattern {self.pattern!r}; valid values are {PATTERNS}")
        if self.width % 2 or self.height % 2:
            raise ConfigError(
                f"width and height must be even for yuv420p, got {self.width}x{self.height}"
            )
        if self.duration <= 0 or self.fps <= 0:
            raise ConfigError("duration and fps must be > 0")

    @property
    def num_frames(self) -> int:
        return round(self.duration * self.fps)

    def with_(self, **changes: object) -> VideoSpec:
        return replace(self, **changes)  # type: ignore[arg-type]


def _video_source(spec: VideoSpec) -> str:
    size = f"{spec.width}x{spec.height}"
    if spec.pattern == "index":
        # band b (top to bottom) shows bits 3b..3b+2 of the frame number N
        lum = f"{_STEP // 2}+{_STEP}*mod(floor(N/pow({_LEVELS},floor({_BANDS}*Y/H))),{_LEVELS})"
        return (
            f"color=c=black:s={size}:r={spec.fps}:d={spec.duration},"
            f"format=yuv420p,geq=lum='{lum}':cb=128:cr=128"
        )
    src = f"testsrc2=s={size}:r={spec.fps}:d={spec.duration}"
    if spec.pattern == "noise":
        src += ",noise=alls=24:allf=t+u"
    return src


def make_video(path: str | os.PathLike[str], spec: VideoSpec | None = None) -> Path:
    """Write ``spec`` as an mp4 at ``path`` (atomically: temp name, then rename)."""
    spec = spec or VideoSpec()
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    args = ["-f", "lavfi", "-i", _video_source(spec)]
    if spec.audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:d={spec.duration}"]
    args += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac", "-b:a", "64k"] if spec.audio else [])
    args += ["-c:v", "libx264", "-preset", spec.preset, "-pix_fmt", "yuv420p"]
    if spec.bitrate:
        args += ["-b:v", spec.bitrate, "-maxrate", spec.bitrate, "-bufsize", spec.bitrate]
    else:
        crf = spec.crf
        if spec.pattern == "index" and spec.height < 16 * _BANDS:
            crf = min(crf, 18)  # bands under 16 px blur across their edges at higher crf
        args += ["-crf", str(crf)]
    if spec.gop:
        args += ["-g", str(spec.gop), "-keyint_min", str(spec.gop), "-sc_threshold", "0"]
    args += ["-frames:v", str(spec.num_frames), "-t", str(spec.duration)]
    if spec.faststart:
        args += ["-movflags", "+faststart"]
    if spec.comment is not None:
        args += ["-metadata", f"comment={spec.comment}"]
    args += ["-f", "mp4", "-y", "file:" + str(tmp)]
    try:
        run_ffmpeg(args)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def frame_index(frame: np.ndarray) -> int:
    """The source frame number painted by the ``index`` pattern (frame: HxW grey or HxWx3 RGB)."""
    img = np.asarray(frame)
    if img.ndim == 3:  # RGB of a neutral grey: every channel carries the luma
        img = img[..., :3].mean(axis=2)
    h, w = img.shape[:2]
    value = 0
    for b in range(_BANDS):
        top, bottom = (b * h) // _BANDS, ((b + 1) * h) // _BANDS
        margin = max(1, (bottom - top) // 4)
        level = float(img[top + margin : bottom - margin, w // 4 : 3 * w // 4].mean())
        digit = round((level - _STEP // 2) / _STEP)
        value += min(max(digit, 0), _LEVELS - 1) * _LEVELS**b
    return value


CORRUPTIONS = ("truncate", "empty", "garbage", "html")


def corrupt_video(
    path: str | os.PathLike[str], how: str = "truncate", *, keep: float = 0.4
) -> Path:
    """Damage a file the ways real downloads go bad (for tests and the mirror's anomalies)."""
    p = Path(path)
    if how == "truncate":  # a download cut short: the tail of mdat (or the moov) is gone
        data = p.read_bytes()
        p.write_bytes(data[: max(1, int(len(data) * keep))])
    elif how == "empty":
        p.write_bytes(b"")
    elif how == "garbage":
        p.write_bytes(np.random.default_rng(len(p.name)).bytes(4096))
    elif how == "html":  # what a CDN error page saved under the clip's name looks like
        p.write_text("<html><body><h1>503 Service Unavailable</h1></body></html>\n")
    else:
        raise ConfigError(f"unknown corruption {how!r}; valid values are {', '.join(CORRUPTIONS)}")
    return p
