"""``CountixDataset`` and ``AvaKineticsDataset``: training items of a Countix / AVA-Kinetics root.

Both read the root's manifest and annotation copy once (``data/downstream.py``: each row on its
clip file, from the recorded fps and start offset, nothing probed), keep what items need as
numpy arrays (they pickle into ``DataLoader`` workers without copying per-row objects), and
decode with the decoders of ``data/decoders.py``. Frame indices are the clip file's, so a
fast-trimmed clip's lead-in is counted the way ``catalog/relative.py`` counts it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kinetix.catalog.downstream import AVA_NUM_CLASSES, RejectedRow
from kinetix.data.datasets import resolve_output, to_output
from kinetix.data.decoders import PyAVDecoder, VideoDecoder, make_decoder, scaled_size
from kinetix.data.downstream import AvaKeyframe, CountixItem, DownstreamSplit, load_downstream
from kinetix.data.index import PackedStrings, describe_left_out
from kinetix.data.samplers import CentredSampler, FrameSampler, item_rng, make_sampler
from kinetix.errors import ConfigError, ManifestError

log = logging.getLogger(__name__)

SPANS = ("span", "clip")


class _DownstreamDataset:
    """What both share: the split's rows, the decoder (per worker), the output type."""

    release = ""

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        decoder: str,
        short_side: int | None,
        transform: Callable[[Any], Any] | None,
        include_unverified: bool,
        output: str,
    ):
        make_decoder(decoder)  # an unknown or missing decoder fails here, not in a worker
        self.root = Path(root)
        self.split = split
        self.decoder_name = decoder
        self.short_side = short_side
        if short_side is not None:
            scaled_size(2, 2, short_side)  # validates
        self.transform = transform
        self.output = resolve_output(output)
        rows = load_downstream(
            self.root, split, release=self.release, include_unverified=include_unverified
        )
        self.left_out: Counter[str] = rows.left_out()
        self.rejected: list[RejectedRow] = rows.rejected
        if not rows.items:
            raise ManifestError(
                f"{self.root} has no usable {self.release} rows in split {split!r}"
                + (f" (left out: {describe_left_out(self.left_out)})" if self.left_out else "")
            )
        if self.left_out:
            log.warning(
                "%s %s: left out %d %s rows: %s", self.root, split, sum(self.left_out.values()),
                self.release, describe_left_out(self.left_out),
            )  # fmt: skip
        self._load(rows)
        self._decoder: VideoDecoder | None = None
        self._pyav: VideoDecoder | None = None

    def _load(self, rows: DownstreamSplit) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._paths)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoder"] = state["_pyav"] = None  # decoders are per process
        return state

    def _check_item(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item {i} out of range for {n} items")
        return i % n

    def _read(self, i: int, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` of item ``i``'s clip; PyAV for a fast trim (decord ignores its
        edit list)."""
        if self._decoder is None:
            self._decoder = make_decoder(self.decoder_name)
        decoder = self._decoder
        if self._lead[i] > 0 and not decoder.honours_edit_lists:
            if self._pyav is None:
                self._pyav = PyAVDecoder()
            decoder = self._pyav
        size = None
        if self.short_side is not None:
            size = scaled_size(int(self._sizes[i, 0]), int(self._sizes[i, 1]), self.short_side)
        return decoder.read(self.root / self._paths[i], indices, size)

    def _finish(self, frames: np.ndarray) -> Any:
        result = to_output(frames, self.output)
        return self.transform(result) if self.transform is not None else result

    def _clip_arrays(self, clips: Sequence[CountixItem | AvaKeyframe]) -> None:
        self._paths = PackedStrings([c.clip.path for c in clips])
        self._keys = PackedStrings([c.clip.key for c in clips])
        self.fps = np.array([c.clip.timing.fps for c in clips], dtype=np.float64)
        self.num_frames = np.array([c.clip.num_frames for c in clips], dtype=np.int64)
        self._lead = np.array(
            [max(0, round(-c.clip.timing.start_offset * c.clip.timing.fps)) for c in clips],
            dtype=np.int64,
        )
        self._sizes = np.array(
            [(c.clip.width or 0, c.clip.height or 0) for c in clips], dtype=np.int64
        ).reshape(-1, 2)
        self.labels = np.array([c.clip.label_index for c in clips], dtype=np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {self.split!r}, {len(self)} items)"


class CountixDataset(_DownstreamDataset):
    """Countix rows of a root made by ``kinetix download countix``.

    Item ``i`` is a dict: ``frames`` uint8 [T, H, W, C] sampled over the repetition span
    (``over="span"``, default) or the whole clip (``over="clip"``, the lead-in of a fast trim
    left out), ``count``, ``span`` the repetition's [start, end) frame indices of the clip
    file, ``indices`` the clip frames returned, ``in_span`` which of them are inside the span,
    ``label`` (K700-2020 class index) and ``key``. The same ``seed``, epoch and item give the
    same frames in any worker.
    """

    release = "countix"

    def __init__(
        self,
        root: str | Path,
        split: str,
        frames_per_clip: int = 32,
        frame_stride: int = 1,
        sampler: str | FrameSampler = "uniform",
        *,
        over: str = "span",
        decoder: str = "pyav",
        short_side: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
        include_unverified: bool = False,
        target_fps: float | None = None,
        output: str = "auto",
    ):
        if over not in SPANS:
            raise ConfigError(f"unknown over={over!r}; valid values are {', '.join(SPANS)}")
        self.over = over
        self.sampler: FrameSampler = (
            make_sampler(sampler, frames_per_clip, frame_stride, target_fps=target_fps)
            if isinstance(sampler, str)
            else sampler
        )
        self.seed = seed
        self.epoch = 0
        super().__init__(
            root, split, decoder=decoder, short_side=short_side, transform=transform,
            include_unverified=include_unverified, output=output,
        )  # fmt: skip

    def _load(self, rows: DownstreamSplit) -> None:
        items: list[CountixItem] = rows.items  # type: ignore[assignment]
        self._clip_arrays(items)
        self.counts = np.array([it.span.count for it in items], dtype=np.int64)
        self.spans = np.array(
            [(it.span.start_frame, it.span.end_frame) for it in items], dtype=np.int64
        ).reshape(-1, 2)
        self.lines = np.array([it.row.line for it in items], dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def frame_indices(self, i: int) -> np.ndarray:
        i = self._check_item(i)
        fps = float(self.fps[i])
        rng = item_rng(self.seed, self.epoch, i)
        if self.over == "span":
            start, end = (int(v) for v in self.spans[i])
            chosen = self.sampler(end - start, fps, rng) + start
        else:
            n, lead = int(self.num_frames[i]), int(self._lead[i])
            lead = min(lead, n - 1)
            chosen = self.sampler(n - lead, fps, rng) + lead
        return chosen if self.sampler.views > 1 else chosen[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = self._check_item(i)
        indices = self.frame_indices(i)
        frames = self._read(i, indices.ravel())
        frames = frames.reshape(*indices.shape, *frames.shape[1:])  # [V, T, ...] for multiview
        start, end = (int(v) for v in self.spans[i])
        return {
            "frames": self._finish(frames),
            "count": int(self.counts[i]),
            "span": self.spans[i].copy(),
            "indices": indices,
            "in_span": (indices >= start) & (indices < end),
            "label": int(self.labels[i]),
            "key": self._keys[i],
        }


class AvaKineticsDataset(_DownstreamDataset):
    """AVA-Kinetics keyframes of a root made by ``kinetix download ava-kinetics``.

    Item ``i`` is a dict: ``frames`` uint8 [T, H, W, C], ``frames_per_clip`` frames
    ``frame_stride`` apart with the keyframe at position ``T // 2`` (``keyframe``), ``boxes``
    an (N, 4) float32 array of x1, y1, x2, y2 in pixels of the returned frames (after
    ``short_side``), ``labels`` an (N, 80) float32 multi-hot over the AVA actions (column
    ``a - 1`` for action id ``a``), ``persons`` (N,) (-1: no person id), ``label`` (the
    K700-2020 class index), ``key`` and ``timestamp``. A test keyframe has N = 0. Items have
    different N: batch them with ``collate_keyframes``.
    """

    release = "ava-kinetics"

    def __init__(
        self,
        root: str | Path,
        split: str,
        frames_per_clip: int = 32,
        frame_stride: int = 2,
        *,
        decoder: str = "pyav",
        short_side: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        include_unverified: bool = False,
        target_fps: float | None = None,
        output: str = "auto",
    ):
        self.sampler = CentredSampler(frames_per_clip, frame_stride, target_fps)
        super().__init__(
            root, split, decoder=decoder, short_side=short_side, transform=transform,
            include_unverified=include_unverified, output=output,
        )  # fmt: skip

    def _load(self, rows: DownstreamSplit) -> None:
        keyframes: list[AvaKeyframe] = rows.items  # type: ignore[assignment]
        self._clip_arrays(keyframes)
        self.keyframes = np.array([k.keyframe.frame for k in keyframes], dtype=np.int64)
        self.timestamps = np.array([k.timestamp for k in keyframes], dtype=np.float64)
        counts = [len(k.boxes) for k in keyframes]
        self._box_at = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self._box_at[1:])
        self._boxes = np.array(
            [box for k in keyframes for box in k.boxes], dtype=np.float32
        ).reshape(-1, 4)
        self._actions = np.concatenate([k.multi_hot().astype(np.uint8) for k in keyframes]).reshape(
            -1, AVA_NUM_CLASSES
        )
        self._persons = np.array([p for k in keyframes for p in k.persons], dtype=np.int64)

    def frame_indices(self, i: int) -> np.ndarray:
        i = self._check_item(i)
        return self.sampler.around(
            int(self.keyframes[i]), int(self.num_frames[i]), float(self.fps[i])
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = self._check_item(i)
        indices = self.frame_indices(i)
        frames = self._read(i, indices)
        height, width = frames.shape[1:3]
        first, last = self._box_at[i], self._box_at[i + 1]
        boxes = self._boxes[first:last] * np.array([width, height, width, height], np.float32)
        return {
            "frames": self._finish(frames),
            "boxes": boxes,
            "labels": self._actions[first:last].astype(np.float32),
            "persons": self._persons[first:last].copy(),
            "keyframe": self.sampler.frames_per_clip // 2,
            "indices": indices,
            "label": int(self.labels[i]),
            "key": self._keys[i],
            "timestamp": float(self.timestamps[i]),
        }


def collate_keyframes(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A ``DataLoader`` ``collate_fn`` for ``AvaKineticsDataset``: ``frames`` stacked to
    [B, T, H, W, C] (same sizes needed, e.g. from ``short_side`` plus a crop), ``boxes``,
    ``labels``, ``persons`` and ``indices`` as lists (N differs per keyframe), the rest lists."""
    out: dict[str, Any] = {}
    for name in batch[0]:
        values = [item[name] for item in batch]
        if name == "frames":
            first = values[0]
            if hasattr(first, "numpy"):  # torch tensors
                import torch

                out[name] = torch.stack(values)
            else:
                out[name] = np.stack(values)
        else:
            out[name] = values
    return out
