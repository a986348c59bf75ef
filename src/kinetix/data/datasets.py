"""Map-style datasets over a kinetix root: ``KineticsDataset`` and ``RawFramesDataset``."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kinetix.data.decoders import (
    DECODERS,
    JpegFolderReader,
    PyAVDecoder,
    VideoDecoder,
    make_decoder,
    scaled_size,
)
from kinetix.data.index import ClipEntry, ClipIndex, RootInfo
from kinetix.data.samplers import FrameSampler, MultiViewSampler, item_rng, make_sampler
from kinetix.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

OUTPUTS = ("auto", "numpy", "torch")


def resolve_output(output: str) -> str:
    """``auto`` is ``torch`` when torch is installed, else ``numpy``; decided once, up front."""
    if output not in OUTPUTS:
        raise ConfigError(f"unknown output {output!r}; valid values are {', '.join(OUTPUTS)}")
    if output == "auto":
        return "torch" if importlib.util.find_spec("torch") is not None else "numpy"
    if output == "torch" and importlib.util.find_spec("torch") is None:
        raise MissingDependencyError("torch", "torch")
    return output


def to_output(frames: np.ndarray, output: str) -> Any:
    if output == "torch":
        import torch  # only this code path needs torch

        return torch.from_numpy(frames)
    return frames


class _ClipDataset:
    """What both datasets share: the clip index, the sampler, seeding and output type."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        frames_per_clip: int,
        frame_stride: int,
        sampler: str | FrameSampler,
        num_views: int,
        target_fps: float | None,
        short_side: int | None,
        transform: Callable[[Any], Any] | None,
        seed: int,
        include_unverified: bool,
        output: str,
        release: str | None,
    ):
        self.root = Path(root)
        self.split = split
        self.info = RootInfo.read(self.root)
        self._check_kind(self.info)
        if isinstance(sampler, str):
            sampler = make_sampler(
                sampler, frames_per_clip, frame_stride, num_views=num_views, target_fps=target_fps
            )
        self.sampler: FrameSampler = sampler
        self.short_side = short_side
        if short_side is not None:
            scaled_size(2, 2, short_side)  # validates
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.output = resolve_output(output)
        self.index = ClipIndex.load(
            self.root, split, release=release, include_unverified=include_unverified
        )

    def _check_kind(self, info: RootInfo) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Draw other frames next epoch (like ``DistributedSampler.set_epoch``). With
        ``persistent_workers=True`` workers keep the epoch they were started with."""
        self.epoch = epoch

    @property
    def labels(self) -> np.ndarray:
        """Class index of every clip (-1 for unlabelled), e.g. for a weighted sampler."""
        return self.index.labels

    def clip(self, i: int) -> ClipEntry:
        """What the manifest says about item ``i``."""
        return self.index[self._check_item(i)]

    def frame_indices(self, i: int, num_frames: int | None = None) -> np.ndarray:
        """The frame numbers item ``i`` loads this epoch: [T], or [V, T] for multiview."""
        entry = self.clip(i)
        n = num_frames if num_frames is not None else entry.num_frames
        if n is None:
            n = self._probe_frames(entry)
        # A fast trim keeps the lead-in from the keyframe before time_start: sample the
        # annotated span only, after it.
        lead = round(entry.lead_seconds * entry.fps) if entry.fps and entry.lead_seconds else 0
        lead = min(lead, max(n - 1, 0))
        rng = item_rng(self.seed, self.epoch, self._check_item(i))
        chosen = self.sampler(n - lead, entry.fps, rng) + lead
        return (
            chosen
            if self.sampler.views > 1 or isinstance(self.sampler, MultiViewSampler)
            else chosen[0]
        )

    def _probe_frames(self, entry: ClipEntry) -> int:
        raise NotImplementedError

    def _read(self, entry: ClipEntry, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_item(self, i: int) -> int:
        n = len(self.index)
        if not -n <= i < n:
            raise IndexError(f"item {i} out of range for {n} clips")
        return i % n

    def __getitem__(self, i: int) -> tuple[Any, int]:
        entry = self.clip(i)
        indices = self.frame_indices(i)
        frames = self._read(entry, indices.ravel())
        frames = frames.reshape(*indices.shape, *frames.shape[1:])
        result = to_output(frames, self.output)
        if self.transform is not None:
            result = self.transform(result)
        return result, entry.label

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.root)!r}, {self.split!r}, {len(self)} clips, "
            f"sampler={type(self.sampler).__name__}, output={self.output!r})"
        )


class KineticsDataset(_ClipDataset):
    """Clips of one split of a kinetix videos root, read through its manifest.

    Returns ``(frames, label)``: frames uint8 [T, H, W, C] ([V, T, H, W, C] for
    ``sampler="multiview"``), label the class index in mmaction2 label-map order (-1 for
    unlabelled test clips). ``output="auto"`` gives torch tensors when torch is installed,
    numpy arrays otherwise. Only clips that verified good are used unless
    ``include_unverified`` (clips verified bad never are). The same ``seed``, epoch and
    index always give the same frames, in any worker.

    ``decoder="decord"`` is refused for clips cut with ``trim=fast`` (decord ignores MP4 edit
    lists and returns shifted frames): those clips are read with PyAV, with one warning.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        frames_per_clip: int = 16,
        frame_stride: int = 4,
        sampler: str | FrameSampler = "random",
        num_views: int = 1,
        decoder: str = "pyav",
        short_side: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
        include_unverified: bool = False,
        *,
        target_fps: float | None = None,
        output: str = "auto",
        release: str | None = None,
    ):
        if decoder not in DECODERS:
            raise ConfigError(
                f"unknown decoder {decoder!r}; valid values are {', '.join(DECODERS)}"
            )
        super().__init__(
            root, split, frames_per_clip=frames_per_clip, frame_stride=frame_stride,
            sampler=sampler, num_views=num_views, target_fps=target_fps, short_side=short_side,
            transform=transform, seed=seed, include_unverified=include_unverified, output=output,
            release=release,
        )  # fmt: skip
        self.decoder_name = decoder
        make_decoder(decoder)  # fails now, not in a worker, when an optional decoder is missing
        self._decoder: VideoDecoder | None = None  # made lazily in each worker
        self._fallback: VideoDecoder | None = None
        self._warned_edit_lists = False

    def _check_kind(self, info: RootInfo) -> None:
        info.require("videos", "use kinetix.data.RawFramesDataset for frames roots")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoder"] = state["_fallback"] = None  # decoders are per process
        return state

    def decoder_for(self, entry: ClipEntry) -> VideoDecoder:
        if self._decoder is None:
            self._decoder = make_decoder(self.decoder_name)
        if entry.fast_trim and not self._decoder.honours_edit_lists:
            if not self._warned_edit_lists:
                self._warned_edit_lists = True
                count = int(self.index.fast_trim.sum())
                message = (
                    f"{self._decoder.name} ignores MP4 edit lists, so it returns wrong frames for "
                    f"the {count} clips of {self.root}/{self.split} cut with trim=fast; "
                    "those clips are decoded with PyAV instead"
                )
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                log.warning(message)
            if self._fallback is None:
                self._fallback = PyAVDecoder()
            return self._fallback
        return self._decoder

    def _size(self, entry: ClipEntry) -> tuple[int, int] | None:
        if self.short_side is None:
            return None
        if entry.width is None or entry.height is None:
            info = PyAVDecoder().probe(entry.path)
            return scaled_size(info.width, info.height, self.short_side)
        return scaled_size(entry.width, entry.height, self.short_side)

    def _probe_frames(self, entry: ClipEntry) -> int:
        return PyAVDecoder().probe(entry.path).num_frames

    def _read(self, entry: ClipEntry, indices: np.ndarray) -> np.ndarray:
        return self.decoder_for(entry).read(entry.path, indices, self._size(entry))


class RawFramesDataset(_ClipDataset):
    """Clips of one split of a frames root (``kinetix frames``): folders of ``img_00001.jpg``.

    Same samplers, seeding and output as ``KineticsDataset``; ``num_frames`` comes from the
    manifest, so no folder is listed.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        frames_per_clip: int = 16,
        frame_stride: int = 4,
        sampler: str | FrameSampler = "random",
        num_views: int = 1,
        short_side: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
        include_unverified: bool = False,
        *,
        target_fps: float | None = None,
        output: str = "auto",
        release: str | None = None,
        template: str = "img_{:05d}.jpg",
    ):
        super().__init__(
            root, split, frames_per_clip=frames_per_clip, frame_stride=frame_stride,
            sampler=sampler, num_views=num_views, target_fps=target_fps, short_side=short_side,
            transform=transform, seed=seed, include_unverified=include_unverified, output=output,
            release=release,
        )  # fmt: skip
        self.reader = JpegFolderReader(template)

    def _check_kind(self, info: RootInfo) -> None:
        info.require("frames", "use kinetix.data.KineticsDataset for videos roots")

    def _probe_frames(self, entry: ClipEntry) -> int:
        # only rows written without a count get here; counting files is the one way left
        return len(list(entry.path.glob(self.reader.template.replace("{:05d}", "*"))))

    def _read(self, entry: ClipEntry, indices: np.ndarray) -> np.ndarray:
        size = None
        if self.short_side is not None:
            w, h = (
                (entry.width, entry.height)
                if entry.width and entry.height
                else self.reader.size_of(entry.path)
            )
            size = scaled_size(w, h, self.short_side)
        return self.reader.read(entry.path, indices, size)
