"""The ``turbo`` frame writer: PyAV decodes, libjpeg-turbo (simplejpeg) encodes the YUV planes."""

from __future__ import annotations

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


def resolve_encoder(encoder: JpegEncoder) -> JpegEncoder:
    """``auto`` -> ``turbo`` when simplejpeg imports, else ``ffmpeg``; a missing one says so."""
    if encoder is JpegEncoder.AUTO:
        return JpegEncoder.FFMPEG if simplejpeg is None else JpegEncoder.TURBO
    if encoder is JpegEncoder.TURBO and simplejpeg is None:
        raise ConfigError("--encoder turbo needs simplejpeg: pip install 'simplejpeg>=1.7'")
    return encoder


def jpeg_quality(qscale: int) -> int:
    """libjpeg quality for ffmpeg's ``-q:v`` ``qscale`` (2 -> 95, 5 -> 88, 20 -> 50, 31 -> 32).

    Both scale the standard quantisation tables: ffmpeg linearly in q, taken as 5q % (q 2 is
    the 10 % of libjpeg quality 95), libjpeg by 200-2Q % for Q >= 50 and 5000/Q % below.
    """
    scale = 5 * qscale
    return round(100 - scale / 2 if scale <= 100 else 5000 / scale)


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
