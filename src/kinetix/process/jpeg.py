"""JPEG quantisation of ``kinetix frames``, and the ``turbo`` writer (PyAV + libjpeg-turbo)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from kinetix.config import FramesConfig, JpegEncoder
from kinetix.errors import ConfigError, ErrorCode, MediaError
from kinetix.process.filters import video_filters
from kinetix.process.probe import libav_reason, open_video

try:
    import simplejpeg
except ImportError:  # an install without it still extracts frames, with ffmpeg
    simplejpeg = None

# limited (TV) range -> full range, the conversion ffmpeg inserts before its mjpeg encoder
# (JPEG decoders read full range; encoding the planes as they are would look washed out)
_LUMA = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_CHROMA = np.clip(np.round((np.arange(256) - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG
_PLANAR_420 = ("yuv420p", "yuvj420p")
_FILTER = re.compile(r"(?:[^,']|'[^']*')+")  # one filter of a chain; commas inside quotes stay


# ffmpeg's mjpeg encoder quantises with MPEG-1's default intra matrix scaled by qscale, the
# same table for luma and chroma ("for mjpeg, we do include qscale in the matrix",
# libavcodec/mpegvideo_enc.c); libjpeg scales JPEG Annex K's tables by its quality
_MPEG1_INTRA = (
    8, 16, 19, 22, 26, 27, 29, 34, 16, 16, 22, 24, 27, 29, 34, 37,
    19, 22, 26, 27, 29, 34, 34, 38, 22, 22, 26, 27, 29, 34, 37, 40,
    22, 26, 27, 29, 32, 35, 40, 48, 26, 27, 29, 32, 35, 40, 48, 58,
    26, 27, 29, 34, 38, 46, 56, 69, 27, 29, 35, 38, 46, 56, 69, 83,
)  # fmt: skip
_ANNEX_K_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_ANNEX_K_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32  # fmt: skip


def resolve_encoder(encoder: JpegEncoder) -> JpegEncoder:
    """``auto`` -> ``ffmpeg`` (ffmpeg's own ``-q:v`` JPEGs); ``turbo`` needs simplejpeg."""
    if encoder is JpegEncoder.AUTO:
        return JpegEncoder.FFMPEG
    if encoder is JpegEncoder.TURBO and simplejpeg is None:
        raise ConfigError("--encoder turbo needs simplejpeg: pip install 'simplejpeg>=1.7'")
    return encoder


def ffmpeg_qtable(qscale: int) -> tuple[int, ...]:
    """The quantisation table (natural order) ``ffmpeg -q:v qscale`` writes, luma and chroma.

    The DC step stays 8 (MPEG's 8-bit intra DC precision); AC steps are MPEG-1's default
    intra matrix times qscale / 8: steps 4-20 at q 2, against libjpeg quality 95's 1-12.
    """
    return (8, *(min(255, (m * qscale) >> 3) for m in _MPEG1_INTRA[1:]))


def libjpeg_qtables(quality: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(luma, chroma) tables, natural order, libjpeg's ``jpeg_set_quality(quality)`` writes."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(
        tuple(min(255, max(1, (step * scale + 50) // 100)) for step in table)
        for table in (_ANNEX_K_LUMA, _ANNEX_K_CHROMA)
    )  # type: ignore[return-value]


def _distortion(luma: tuple[int, ...], chroma: tuple[int, ...]) -> float:
    """Mean squared quantisation step of a 4:2:0 MCU (4 luma blocks, 2 chroma)."""
    return (4 * sum(s * s for s in luma) + 2 * sum(s * s for s in chroma)) / 6


def jpeg_quality(qscale: int) -> int:
    """The libjpeg quality whose tables quantise as finely, on average, as ``-q:v qscale``.

    (2 -> 94, 5 -> 86, 20 -> 43, 31 -> 28.) Annex K's tables are finer at low frequencies
    and coarser at high ones than ffmpeg's flat MPEG-1 table, so equal distortion (equal
    PSNR: 34.4 dB for both at q 2 on ``scene`` clips) costs libjpeg ~25% more bytes;
    matching the size instead costs ~0.8 dB. That is why ``turbo`` is not the default.
    """
    table = ffmpeg_qtable(qscale)
    wanted = _distortion(table, table)
    return min(
        range(1, 101),
        key=lambda q: abs(math.log(_distortion(*libjpeg_qtables(q)) / wanted)),
    )


def write_frames(
    src: str, folder: Path, config: FramesConfig, threads: int, pattern: str
) -> int | None:
    """Write every (or ``config.fps``) frame of ``src`` as ``folder/pattern % n``, n from 1.

    Returns the number written, or None (nothing written) for a clip with a rotation in its
    display matrix, which ffmpeg's autorotation should handle. ``config.fps`` and
    ``config.short_side`` run through the very filters the ffmpeg path uses (``fps``,
    ``scale``), in-process, so the frames kept and the sizes are the same. Raises
    ``MediaError`` for a clip libav cannot open or read.
    """
    assert simplejpeg is not None, "resolve_encoder() picks turbo only when simplejpeg imports"
    quality = jpeg_quality(config.quality)
    written = 0

    def write(frame: Any) -> None:
        nonlocal written
        y, u, v = (
            np.frombuffer(p, np.uint8, p.line_size * p.height).reshape(p.height, p.line_size)[
                :, : p.width
            ]
            for p in frame.planes
        )
        if not (frame.color_range == _JPEG_RANGE or frame.format.name == "yuvj420p"):
            y, u, v = np.take(_LUMA, y), np.take(_CHROMA, u), np.take(_CHROMA, v)
        written += 1
        (folder / (pattern % written)).write_bytes(
            simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality)
        )

    with open_video(src) as container:
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            graph = _filter_graph(stream, config)
            for frame in _decode(container, stream):
                if written == 0 and frame.rotation:
                    return None
                if graph is None:
                    write(frame)
                    continue
                graph.vpush(frame)
                for out in _pull(graph):
                    write(out)
            if graph is not None:
                graph.vpush(None)  # flush: the fps filter may still hold the last frame
                for out in _pull(graph):
                    write(out)
        except av.FFmpegError as exc:
            reason = f"cannot decode ({libav_reason(exc)})"
            raise MediaError(src, reason, code=ErrorCode.UNREADABLE) from None
    return written


def _decode(container: Any, stream: Any) -> Iterator[Any]:
    """Decoded frames; a damaged packet is skipped, as ffmpeg does (the count check sees it)."""
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            continue
        yield from frames


def _filter_graph(stream: Any, config: FramesConfig) -> Any:
    """A graph running the ffmpeg path's ``-vf`` chain, or None when frames pass as they are.

    Frames that are not 8-bit 4:2:0 are converted to it, as simplejpeg's planes must be.
    """
    chain = video_filters(fps=config.fps, short_side=config.short_side, upscale=config.upscale)
    filters = [tuple(f.partition("=")[::2]) for f in _FILTER.findall(chain or "")]
    if stream.codec_context.pix_fmt not in _PLANAR_420:
        filters.append(("format", "yuv420p"))
    if not filters:
        return None
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(template=stream)]
    nodes += [graph.add(name, args) for name, args in filters]
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def _pull(graph: Any) -> Iterator[Any]:
    while True:
        try:
            yield graph.vpull()
        except (av.BlockingIOError, av.EOFError):
            return
