"""Turn stored media into RGB frames: PyAV (default), decord, torchcodec, and JPEG frame folders."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, Union

import numpy as np

from kinetix.errors import ConfigError, DecodeError, MissingDependencyError

log = logging.getLogger(__name__)

DECODERS = ("pyav", "decord", "torchcodec")

Source = Union[str, Path, IO[bytes]]  # noqa: UP007 - a runtime alias; py3.10 has no X | IO  # a file, or its bytes (a WebDataset sample)


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float | None
    width: int
    height: int


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side ``short_side`` and the aspect kept; the other side
    is rounded to an even number, as yuv420p encoders and most crops expect."""
    if short_side is None:
        return width, height
    if short_side < 2:
        raise ConfigError(f"short_side must be >= 2, got {short_side}")
    if width <= height:
        return short_side, max(2, round(height * short_side / width / 2) * 2)
    return max(2, round(width * short_side / height / 2) * 2), short_side


def _plan(indices: np.ndarray) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Sorted unique frames to decode, and where each goes in the output (indices may repeat)."""
    flat = np.asarray(indices, dtype=np.int64).ravel()
    positions: dict[int, list[int]] = {}
    for pos, i in enumerate(flat.tolist()):
        positions.setdefault(i, []).append(pos)
    return np.array(sorted(positions), dtype=np.int64), positions


def _rewind(source: Source) -> Source:
    if hasattr(source, "seek"):
        source.seek(0)  # type: ignore[union-attr]
    return source


def _name(source: Source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "<bytes>"


class VideoDecoder(Protocol):
    """Reads chosen frames of one clip into a uint8 array [N, H, W, 3]."""

    name: str
    honours_edit_lists: bool  # False: frame i may not be the i-th frame players show

    def probe(self, source: Source) -> VideoInfo: ...

    def read(
        self, source: Source, indices: np.ndarray, size: tuple[int, int] | None = None
    ) -> np.ndarray: ...


def decode_threads() -> int:
    """libavcodec threads for one decode: every core in the main process (0: libav picks),
    an equal share inside a DataLoader worker, so ``num_workers`` decodes never fight over
    the cores with frame threads (which also delay each frame by one per thread)."""
    data = sys.modules.get("torch.utils.data")
    info = data.get_worker_info() if data is not None else None
    if info is None:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(info.num_workers, 1))


class PyAVDecoder:
    """Decodes in presentation order from (at most) one seek, converting only kept frames.

    For sparse sampling (16 frames, stride 4) this beats seeking per frame by up to 13x on
    long-GOP clips, since every seek decodes again from the previous keyframe. It seeks once,
    to the keyframe before the first wanted frame, when that frame is not the first; frames
    are matched by timestamp, so edit lists (``trim=fast`` clips) are honoured. What it need
    not decode, it does not: a packet whose frame is not wanted is sent with
    ``skip_frame=NONREF``, so the decoder drops it if no other frame refers to it (B-frames,
    exact by definition), and once every wanted frame's packet is in the decoder no further
    packet is read (its delay is drained instead). MP4s open without the trial decode of
    ``avformat_find_stream_info`` (``_open_for_decoding``), and the kept frames go through one
    colour converter per read, on the decode's threads. ``threads`` None: ``decode_threads()``.
    """

    name = "pyav"
    honours_edit_lists = True

    def __init__(self, thread_type: str = "AUTO", threads: int | None = None):
        self.thread_type = thread_type
        self.threads = threads

    def probe(self, source: Source) -> VideoInfo:
        import av

        try:
            with av.open(_rewind(source)) as container:  # type: ignore[arg-type]
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                fps = float(rate) if rate else None
                n = stream.frames
                if not n and stream.duration and fps:
                    n = round(float(stream.duration * stream.time_base) * fps)
                return VideoInfo(
                    int(n or 0), fps, stream.codec_context.width, stream.codec_context.height
                )
        except (av.FFmpegError, IndexError) as exc:
            raise DecodeError(f"cannot open {_name(source)}: {exc}", path=_name(source)) from exc

    def read(
        self, source: Source, indices: np.ndarray, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        import av

        wanted, positions = _plan(indices)
        try:
            out = self._read(av, _rewind(source), wanted, positions, size, seek=True)
            if out is None:  # the seek landed past the first wanted frame: decode from the start
                log.debug("seek overshot in %s; decoding from the start", _name(source))
                out = self._read(av, _rewind(source), wanted, positions, size, seek=False)
        except av.FFmpegError as exc:
            raise DecodeError(f"cannot decode {_name(source)}: {exc}", path=_name(source)) from exc
        if out is None:
            raise DecodeError(f"{_name(source)} has no video frames", path=_name(source))
        return out

    def _read(
        self,
        av: Any,
        source: Source,
        wanted: np.ndarray,
        positions: dict[int, list[int]],
        size: tuple[int, int] | None,
        *,
        seek: bool,
    ) -> np.ndarray | None:
        with _open_for_decoding(av, source) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            threads = decode_threads() if self.threads is None else self.threads
            if threads != 1:
                stream.thread_type = self.thread_type
            stream.codec_context.thread_count = threads
            # one colour converter for the whole read, with the decode's share of the cores:
            # to_ndarray would make a converter, and a pool of one thread per core, per frame
            rgb = av.video.reformatter.VideoReformatter()
            scale: dict[str, Any] = {"format": "rgb24", "threads": threads}
            if size is not None:
                scale.update(width=size[0], height=size[1])
            out: np.ndarray | None = None
            count = sum(map(len, positions.values()))
            fps = float(stream.average_rate or stream.guessed_rate or 0) or None
            tb = float(stream.time_base)
            origin = stream.start_time or 0
            seeked = seek and int(wanted[0]) > 0 and fps is not None
            if seeked:
                assert fps is not None
                container.seek(origin + int(wanted[0] / fps / tb), stream=stream, backward=True)
            j, counter = 0, 0
            last: np.ndarray | None = None
            pending: list[int] = []  # output positions waiting for the next converted frame
            number = None if fps is None else (lambda pts: round((pts - origin) * tb * fps))
            for frame in _needed_frames(container, stream, wanted, number):
                # the frame's number from its timestamp; streams without any are counted
                i = counter if frame.pts is None or number is None else number(frame.pts)
                counter += 1
                if i < wanted[j]:
                    continue
                if seeked and out is None and i > wanted[j]:
                    return None
                while j < len(wanted) and wanted[j] < i:  # frames the stream lacks
                    if out is None:  # before its first frame: they get that frame
                        pending.extend(positions[int(wanted[j])])
                    else:  # after a gap: the frame before it
                        self._fill(out, positions[int(wanted[j])], last)
                    j += 1
                here = j < len(wanted) and wanted[j] == i
                if here or pending:
                    last = rgb.reformat(frame, **scale).to_ndarray()
                    if out is None:  # the frame's own size: the container's may differ
                        out = np.empty((count, *last.shape), dtype=np.uint8)
                    self._fill(out, pending, last)
                    pending.clear()
                if here:
                    self._fill(out, positions[i], last)
                    j += 1
                if j == len(wanted):
                    return out
            if out is None:
                return None
            # the clip has fewer frames than the manifest said: repeat its last kept frame
            for k in range(j, len(wanted)):
                self._fill(out, positions[int(wanted[k])], last)
            return out

    @staticmethod
    def _fill(out: np.ndarray | None, where: list[int], frame: np.ndarray | None) -> None:
        assert out is not None and frame is not None
        for p in where:
            out[p] = frame


# avformat_find_stream_info trial-decodes the first frames of every stream (3.6 ms of a
# 340x256 clip's open, more than a sparse read's 16 colour conversions) for what an MP4's
# headers already carry: size, rate, time base and, for H.264, the reorder depth (the mov
# demuxer derives it from the ctts box). With its probing decoders told to skip frames
# the open costs 0.8 ms; only the pixel format stays unknown until the real decoder meets
# the first frame, as it always does itself. Other containers (Matroska: rate and reorder
# depth come from decoding) and other codecs get the plain open.
_SKIP_TRIAL_DECODE = {"skip_frame": "nonkey"}
_HEADERS_SUFFICE = {"mov,mp4,m4a,3gp,3g2,mj2"}
# reorder depth: H.264 the ctts box, HEVC its SPS; VP9 and AV1 show frames in decode order
_CODECS_SELF_DESCRIBING = {"h264", "hevc", "vp9", "av1"}


def _open_for_decoding(av: Any, source: Source) -> Any:
    """``av.open(source)``, without the trial decode where the headers say all of it."""
    container = av.open(source, options=_SKIP_TRIAL_DECODE)
    video = container.streams.video
    if container.format.name in _HEADERS_SUFFICE and (
        not video or video[0].codec_context.name in _CODECS_SELF_DESCRIBING
    ):
        return container
    container.close()
    return av.open(_rewind(source))


def _needed_frames(
    container: Any, stream: Any, wanted: np.ndarray, number: Callable[[int], int] | None
) -> Iterator[Any]:
    """Decoded frames of ``stream`` in presentation order, leaving out what ``wanted`` (sorted
    frame numbers) does not need: unwanted non-reference frames are not decoded, and no packet
    is read after the last wanted frame's (everything that frame refers to came before it
    in decode order). Packets without timestamps are decoded as they come."""
    ctx = stream.codec_context
    keep = set(wanted.tolist())
    unsent = set(keep)
    skipping = False
    for packet in container.demux(stream):
        i = None if packet.pts is None or number is None else number(packet.pts)
        skip = i is not None and i not in keep
        if skip != skipping:
            ctx.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        unsent.discard(i)  # type: ignore[arg-type]
        if packet.size == 0:  # the demuxer's end-of-stream packet: a flush
            break
        yield from ctx.decode(packet)
        if not unsent:
            break
    if skipping:
        ctx.skip_frame = "DEFAULT"
    yield from ctx.decode(None)  # drain: frames still in the decoder's reorder/thread delay


class DecordDecoder:
    """decord's ``VideoReader.get_batch``. decord (FFmpeg 4.1) ignores MP4 edit lists, so on
    clips cut with ``-c copy`` (manifest ``trim=fast``) its frame i is not the i-th shown."""

    name = "decord"
    honours_edit_lists = False

    def __init__(self, num_threads: int = 0):
        self.num_threads = num_threads
        self._decord = _import("decord", requirement="decord")

    def probe(self, source: Source) -> VideoInfo:
        reader = self._open(source, None)
        h, w = reader[0].shape[:2]
        return VideoInfo(len(reader), float(reader.get_avg_fps()) or None, w, h)

    def _open(self, source: Source, size: tuple[int, int] | None) -> Any:
        kwargs: dict[str, Any] = {"ctx": self._decord.cpu(0), "num_threads": self.num_threads}
        if size is not None:
            kwargs.update(width=size[0], height=size[1])
        src = str(source) if isinstance(source, Path) else _rewind(source)
        try:
            return self._decord.VideoReader(src, **kwargs)
        except self._decord.DECORDError as exc:
            raise DecodeError(
                f"decord cannot open {_name(source)}: {exc}", path=_name(source)
            ) from exc

    def read(
        self, source: Source, indices: np.ndarray, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        reader = self._open(source, size)
        flat = np.minimum(np.asarray(indices, dtype=np.int64).ravel(), len(reader) - 1)
        return reader.get_batch(flat.tolist()).asnumpy()


class TorchCodecDecoder:
    """torchcodec's ``VideoDecoder.get_frames_at`` (only when torchcodec is installed)."""

    name = "torchcodec"
    honours_edit_lists = True

    def __init__(self, num_ffmpeg_threads: int | None = None) -> None:
        self.num_ffmpeg_threads = num_ffmpeg_threads  # None: decode_threads()'s share
        try:
            self._decoders = _import("torchcodec.decoders", requirement="torchcodec")
        except (OSError, RuntimeError) as exc:  # installed, but its native libraries do not load
            error = MissingDependencyError("torchcodec", requirement="torchcodec")
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            error.msg = (  # what an ImportError prints (not its args)
                f"torchcodec is installed but does not load ({first}): it needs FFmpeg's shared "
                "libraries and a build for this torch (a CPU-only torch needs torchcodec's CPU "
                "build, from PyTorch's own wheel index)"
            )
            error.args = (error.msg,)
            raise error from exc

    def _open(self, source: Source) -> Any:
        threads = self.num_ffmpeg_threads
        if threads is None:
            threads = decode_threads()
        kwargs = {"dimension_order": "NHWC", "num_ffmpeg_threads": threads}
        if isinstance(source, (str, Path)):
            return self._decoders.VideoDecoder(str(source), **kwargs)
        data = _rewind(source).read()  # type: ignore[union-attr]
        return self._decoders.VideoDecoder(data, **kwargs)

    def probe(self, source: Source) -> VideoInfo:
        meta = self._open(source).metadata
        return VideoInfo(int(meta.num_frames or 0), meta.average_fps, meta.width, meta.height)

    def read(
        self, source: Source, indices: np.ndarray, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        import torch

        decoder = self._open(source)
        flat = np.minimum(np.asarray(indices, dtype=np.int64).ravel(), len(decoder) - 1)
        frames = decoder.get_frames_at(indices=flat.tolist()).data  # [N, H, W, C] uint8
        if size is not None and (frames.shape[2], frames.shape[1]) != size:
            nchw = frames.permute(0, 3, 1, 2).float()
            nchw = torch.nn.functional.interpolate(
                nchw, size=(size[1], size[0]), mode="bilinear", antialias=True
            )
            frames = nchw.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return frames.contiguous().numpy()


def _import(module: str, *, requirement: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module.split(".")[0], requirement=requirement) from None


def make_decoder(name: str) -> VideoDecoder:
    """The decoder called ``name`` (one of ``DECODERS``); optional ones must be installed."""
    if name == "pyav":
        return PyAVDecoder()
    if name == "decord":
        return DecordDecoder()
    if name == "torchcodec":
        return TorchCodecDecoder()
    raise ConfigError(f"unknown decoder {name!r}; valid values are {', '.join(DECODERS)}")


class JpegFolderReader:
    """Reads ``img_00001.jpg``-style frame folders (1-based, as ``kinetix frames`` writes them)
    with OpenCV, else Pillow, else simplejpeg (libjpeg-turbo; a kinetix dependency, so some
    decoder is always there)."""

    def __init__(self, template: str = "img_{:05d}.jpg"):
        self.template = template
        self._cv2: Any = None
        self._pil: Any = None
        self._turbo: Any = None
        try:
            import cv2

            self._cv2 = cv2
            return
        except ImportError:
            pass
        try:
            from PIL import Image

            self._pil = Image
            return
        except ImportError:
            pass
        try:
            import simplejpeg

            self._turbo = simplejpeg
        except ImportError:
            raise MissingDependencyError(
                "a JPEG decoder (OpenCV, Pillow or simplejpeg)", requirement="simplejpeg"
            ) from None

    def read(
        self, folder: Path, indices: np.ndarray, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        wanted, positions = _plan(indices)
        out: np.ndarray | None = None
        for i in wanted.tolist():
            image = self._load(folder / self.template.format(i + 1), size)
            if out is None:
                out = np.empty((sum(map(len, positions.values())), *image.shape), dtype=np.uint8)
            for p in positions[i]:
                out[p] = image
        assert out is not None  # indices is never empty
        return out

    def size_of(self, folder: Path) -> tuple[int, int]:
        h, w = self._load(folder / self.template.format(1), None).shape[:2]
        return w, h

    def _load(self, path: Path, size: tuple[int, int] | None) -> np.ndarray:
        if self._cv2 is not None:
            cv2 = self._cv2
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DecodeError(f"cannot read frame image {path}", path=str(path))
            if size is not None and (bgr.shape[1], bgr.shape[0]) != size:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self._turbo is not None:
            return self._load_turbo(path, size)
        try:
            image = self._pil.open(path).convert("RGB")
        except OSError as exc:
            raise DecodeError(f"cannot read frame image {path}: {exc}", path=str(path)) from exc
        if size is not None and image.size != size:
            image = image.resize(size, self._pil.BILINEAR)
        return np.asarray(image)

    def _load_turbo(self, path: Path, size: tuple[int, int] | None) -> np.ndarray:
        try:
            data = path.read_bytes()
            # libjpeg-turbo scales by 1/2..1/8 while decoding, never below the size asked for
            rgb = self._turbo.decode_jpeg(
                data,
                colorspace="RGB",
                min_width=size[0] if size else 0,
                min_height=size[1] if size else 0,
            )
        except (OSError, ValueError) as exc:
            raise DecodeError(f"cannot read frame image {path}: {exc}", path=str(path)) from exc
        if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
            rgb = resize_bilinear(rgb, size)
        return rgb


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, C uint8) at ``size`` (width, height): bilinear on pixel centres, as
    OpenCV's ``INTER_LINEAR``; for the decoder that has no resize of its own."""
    width, height = size
    h, w = image.shape[:2]

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)

    y0, y1, wy = taps(height, h)
    x0, x1, wx = taps(width, w)
    src = image.astype(np.float32)
    rows = src[y0] * (1 - wy)[:, None, None] + src[y1] * wy[:, None, None]
    out = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def read_bytes(data: bytes | Sequence[int]) -> IO[bytes]:
    """A seekable file over a clip's bytes (what WebDataset samples carry)."""
    return io.BytesIO(bytes(data))
