"""Tiny real videos for tests, benchmarks and the synthetic mirror, with known fps and frame count.

The ``scene`` pattern is the realistic one for codecs: a camera panning over a "dead leaves"
picture (overlapping discs of power-law sizes, the standard stand-in for natural images:
sharp occluding edges and a 1/f spectrum) with light sensor grain, encoded as ffmpeg's
libx264 defaults would (``preset="medium"``, B-frames), so bitrates and JPEG sizes behave
like real footage rather than like pure noise.

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
from kinetix.process.ffmpeg import file_arg, run_ffmpeg

PATTERNS = ("index", "testsrc", "noise", "scene")
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
    pattern: str = "index"  # index | testsrc | noise | scene (scene: like real footage)
    seed: int = 0  # scene: which picture and camera path
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


def dead_leaves(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An RGB [height, width, 3] uint8 "dead leaves" picture: discs of radius density ~ r^-3
    painted front to back until covered, each a colour with a gentle gradient."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), np.float32)
    free = np.ones((height, width), bool)
    ys, xs = np.mgrid[0:height, 0:width]
    r_min, r_max = 2.0, max(width, height) / 4
    for _ in range(20000):
        if not free.any():
            break
        u = rng.random()  # inverse CDF of p(r) ~ r^-3 on [r_min, r_max]
        r = 1 / np.sqrt(1 / r_min**2 - u * (1 / r_min**2 - 1 / r_max**2))
        cx, cy = rng.uniform(-r, width + r), rng.uniform(-r, height + r)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        dx, dy = xs[y0:y1, x0:x1] - cx, ys[y0:y1, x0:x1] - cy
        disc = (dx * dx + dy * dy <= r * r) & free[y0:y1, x0:x1]
        if not disc.any():
            continue
        base = rng.uniform(20, 235) * np.ones(3) + rng.normal(0, 25, 3)  # mostly muted colours
        shade = 1 + 0.25 * (dx * rng.normal() + dy * rng.normal()) / r
        out[y0:y1, x0:x1][disc] = base * shade[disc][:, None]
        free[y0:y1, x0:x1] &= ~disc
    return np.clip(out, 0, 255).astype(np.uint8)


def _scene_still(spec: VideoSpec, path: Path) -> Path:
    """The picture the ``scene`` camera pans over, as a PPM ffmpeg reads (twice the frame)."""
    image = dead_leaves(spec.width * 2, spec.height * 2, spec.seed)
    h, w = image.shape[:2]
    path.write_bytes(b"P6\n%d %d\n255\n" % (w, h) + image.tobytes())
    return path


def _scene_filters(spec: VideoSpec) -> str:
    """A slow, wandering pan over the still (integer and, through the scale, sub-pixel moves)."""
    rng = np.random.default_rng(spec.seed)
    a, b, c = rng.uniform(0.2, 0.6, 3)
    x = f"{spec.width // 2}+{spec.width // 2 - 2}*sin({a:.3f}*t+{c:.3f})"
    y = f"{spec.height // 2}+{spec.height // 2 - 2}*sin({b:.3f}*t)"
    w, h = spec.width + 8, spec.height + 6  # cropped a little larger, then scaled down
    return (
        f"crop=w={w}:h={h}:x='{x}':y='{y}',scale={spec.width}:{spec.height}:flags=bicubic,"
        "noise=alls=4:allf=t,format=yuv420p"
    )


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
    still = dest.with_name(f".{dest.name}.{os.getpid()}.ppm")
    if spec.pattern == "scene":
        _scene_still(spec, still)
        args = ["-framerate", str(spec.fps), "-loop", "1", "-i", file_arg(still)]
    else:
        args = ["-f", "lavfi", "-i", _video_source(spec)]
    if spec.audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:d={spec.duration}"]
    args += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac", "-b:a", "64k"] if spec.audio else [])
    if spec.pattern == "scene":
        args += ["-vf", _scene_filters(spec), "-r", str(spec.fps)]
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
        still.unlink(missing_ok=True)
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


_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
    27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44,
    51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


@dataclass(frozen=True)
class JpegQuantisation:
    """How a baseline JPEG was quantised: per component its sampling factors and table."""

    sampling: tuple[tuple[int, int], ...]  # (h, v) per component: 4:2:0 is (2,2),(1,1),(1,1)
    tables: tuple[tuple[int, ...], ...]  # per component, 64 steps in natural (row) order


def jpeg_quantisation(data: bytes) -> JpegQuantisation:
    """Read the DQT and SOF segments of a JPEG's header (up to its first scan)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    tables: dict[int, tuple[int, ...]] = {}
    components: list[tuple[int, int, int]] = []
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i + 4 : i + 2 + length]
        if marker == 0xDB:  # DQT: one or more 8-bit tables
            j = 0
            while j < len(segment):
                precision, slot = segment[j] >> 4, segment[j] & 15
                size = 128 if precision else 64
                raw = segment[j + 1 : j + 1 + size]
                steps = raw if not precision else raw[1::2]  # 16-bit: low bytes (tests only)
                natural = [0] * 64
                for k, step in enumerate(steps):
                    natural[_ZIGZAG[k]] = step
                tables[slot] = tuple(natural)
                j += 1 + size
        elif 0xC0 <= marker <= 0xC2:  # SOF0-2: components, their sampling and table slots
            for c in range(segment[5]):
                sampling, slot = segment[7 + 3 * c], segment[8 + 3 * c]
                components.append((sampling >> 4, sampling & 15, slot))
        elif marker == 0xDA:
            break
        i += 2 + length
    return JpegQuantisation(
        tuple((h, v) for h, v, _ in components), tuple(tables[s] for _, _, s in components)
    )
