"""Which frames of a clip to load: random, uniform and multi-view index choice, fps-aware."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from kinetix.errors import ConfigError

SAMPLERS = ("random", "uniform", "multiview")


class FrameSampler(Protocol):
    """Chooses frame indices of a clip of ``num_frames`` frames: an int64 array [views, T]."""

    frames_per_clip: int
    views: int

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator
    ) -> np.ndarray: ...


def _check(frames_per_clip: int, frame_stride: int, target_fps: float | None) -> None:
    if frames_per_clip < 1:
        raise ConfigError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if frame_stride < 1:
        raise ConfigError(f"frame_stride must be >= 1, got {frame_stride}")
    if target_fps is not None and target_fps <= 0:
        raise ConfigError(f"target_fps must be > 0, got {target_fps}")


class _StridedSampler:
    """Clips of ``frames_per_clip`` frames, ``frame_stride`` apart.

    With ``target_fps`` the stride counts frames at that rate, so a 60 fps clip is read with
    twice the stride of a 30 fps one and every clip spans the same time. Clips shorter than
    the span repeat their last frame (mmaction2's ``repeat_last``).
    """

    def __init__(
        self, frames_per_clip: int, frame_stride: int = 1, target_fps: float | None = None
    ):
        _check(frames_per_clip, frame_stride, target_fps)
        self.frames_per_clip = frames_per_clip
        self.frame_stride = frame_stride
        self.target_fps = target_fps

    def stride(self, fps: float | None) -> float:
        """The stride in source frames for a clip recorded at ``fps``."""
        if self.target_fps is None or fps is None or not math.isfinite(fps) or fps <= 0:
            return float(self.frame_stride)
        return self.frame_stride * fps / self.target_fps

    def offsets(self, fps: float | None) -> np.ndarray:
        return np.round(np.arange(self.frames_per_clip) * self.stride(fps)).astype(np.int64)

    @staticmethod
    def _place(offsets: np.ndarray, starts: np.ndarray, num_frames: int) -> np.ndarray:
        return np.minimum(starts[:, None] + offsets[None, :], max(num_frames, 1) - 1)


class RandomClipSampler(_StridedSampler):
    """One clip starting at a random frame (training)."""

    views = 1

    def __call__(self, num_frames: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
        offsets = self.offsets(fps)
        room = max(num_frames - int(offsets[-1]), 1)
        start = rng.integers(0, room)
        return self._place(offsets, np.array([start]), num_frames)


class MultiViewSampler(_StridedSampler):
    """``views`` clips with evenly spaced starts, first to last possible (SlowFast's test views).

    One view is the centre clip.
    """

    def __init__(
        self,
        frames_per_clip: int,
        frame_stride: int = 1,
        views: int = 3,
        target_fps: float | None = None,
    ):
        super().__init__(frames_per_clip, frame_stride, target_fps)
        if views < 1:
            raise ConfigError(f"num_views must be >= 1, got {views}")
        self.views = views

    def __call__(self, num_frames: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
        offsets = self.offsets(fps)
        room = max(num_frames - 1 - int(offsets[-1]), 0)
        if self.views == 1:
            starts = np.array([room // 2])
        else:
            starts = np.round(np.linspace(0, room, self.views)).astype(np.int64)
        return self._place(offsets, starts, num_frames)


class CentredSampler(_StridedSampler):
    """``frames_per_clip`` frames ``frame_stride`` apart with frame ``frames_per_clip // 2`` on a
    given centre (an AVA keyframe), as mmaction2's ``SampleAVAFrames`` in test mode; indices
    past either end of the clip repeat its first or last frame."""

    views = 1

    def around(self, centre: int, num_frames: int, fps: float | None) -> np.ndarray:
        offsets = self.offsets(fps)
        offsets = offsets - offsets[self.frames_per_clip // 2]
        return np.clip(centre + offsets, 0, max(num_frames, 1) - 1)


class UniformSampler:
    """``frames_per_clip`` frames spread evenly over the whole clip, each the centre of its
    segment (TSN's test sampling); no stride, no randomness."""

    views = 1

    def __init__(self, frames_per_clip: int):
        _check(frames_per_clip, 1, None)
        self.frames_per_clip = frames_per_clip

    def __call__(self, num_frames: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
        n = max(num_frames, 1)
        centres = (np.arange(self.frames_per_clip) + 0.5) * n / self.frames_per_clip
        return np.minimum(centres.astype(np.int64), n - 1)[None, :]


def make_sampler(
    name: str,
    frames_per_clip: int,
    frame_stride: int = 1,
    *,
    num_views: int = 1,
    target_fps: float | None = None,
) -> FrameSampler:
    """The sampler called ``name`` (one of ``SAMPLERS``)."""
    if num_views != 1 and name != "multiview":
        raise ConfigError(f"num_views only applies to sampler='multiview', not {name!r}")
    if name == "random":
        return RandomClipSampler(frames_per_clip, frame_stride, target_fps)
    if name == "uniform":
        return UniformSampler(frames_per_clip)
    if name == "multiview":
        return MultiViewSampler(frames_per_clip, frame_stride, num_views, target_fps)
    raise ConfigError(f"unknown sampler {name!r}; valid values are {', '.join(SAMPLERS)}")


def item_rng(seed: int, epoch: int, item: int) -> np.random.Generator:
    """The generator of one item in one epoch: same seed, epoch and item give the same frames,
    whichever worker (or how many) loads it."""
    return np.random.default_rng([seed, epoch, item])
