"""Decode the WebDataset shards ``kinetix export --format webdataset`` writes into (frames, label).

Example (the ``webdataset`` package streams the tars, this module decodes each sample;
webdataset wants at least as many shards as DataLoader workers)::

    import webdataset as wds
    from torch.utils.data import DataLoader
    from kinetix.data import ShardSampleDecoder

    shards = "shards/train-{000000..000009}.tar"
    stream = wds.WebDataset(shards, shardshuffle=100, nodesplitter=wds.split_by_node)
    stream = stream.shuffle(1000).map(ShardSampleDecoder(frames_per_clip=16, frame_stride=4))
    loader = DataLoader(stream.batched(8), batch_size=None, num_workers=4)
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kinetix.data.datasets import resolve_output, to_output
from kinetix.data.decoders import PyAVDecoder, read_bytes, scaled_size
from kinetix.data.samplers import FrameSampler, MultiViewSampler, make_sampler
from kinetix.errors import DecodeError


class ShardSampleDecoder:
    """Turns one sample (``{key}.mp4``, ``{key}.json``, ``{key}.cls``) into ``(frames, label)``.

    Frames are chosen as ``KineticsDataset`` chooses them; the random generator is seeded by
    ``seed``, the epoch and the clip key, so a clip gets the same frames wherever it streams.
    """

    def __init__(
        self,
        frames_per_clip: int = 16,
        frame_stride: int = 4,
        sampler: str | FrameSampler = "random",
        num_views: int = 1,
        short_side: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
        *,
        target_fps: float | None = None,
        output: str = "auto",
    ):
        if isinstance(sampler, str):
            sampler = make_sampler(
                sampler, frames_per_clip, frame_stride, num_views=num_views, target_fps=target_fps
            )
        self.sampler = sampler
        self.short_side = short_side
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.output = resolve_output(output)
        self.decoder = PyAVDecoder()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, sample: Mapping[str, Any]) -> tuple[Any, int]:
        key = sample.get("__key__", "")
        if "mp4" not in sample:
            raise DecodeError(f"sample {key!r} has no .mp4 member", path=str(key))
        meta = _json(sample.get("json"))
        label = int(meta.get("label_index", _cls(sample.get("cls"))))
        video = read_bytes(sample["mp4"])
        n, fps = meta.get("num_frames"), meta.get("fps")
        width, height = meta.get("width"), meta.get("height")
        if n is None or (self.short_side is not None and not (width and height)):
            info = self.decoder.probe(video)
            n, fps, width, height = n or info.num_frames, fps or info.fps, info.width, info.height
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(str(key).encode())])
        indices = self.sampler(int(n), fps, rng)
        if self.sampler.views == 1 and not isinstance(self.sampler, MultiViewSampler):
            indices = indices[0]
        size = None
        if self.short_side is not None:
            size = scaled_size(int(width or 0), int(height or 0), self.short_side)
        frames = self.decoder.read(video, indices.ravel(), size)
        result = to_output(frames.reshape(*indices.shape, *frames.shape[1:]), self.output)
        if self.transform is not None:
            result = self.transform(result)
        return result, label


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, (bytes, bytearray)):
        return json.loads(value.decode("utf-8"))
    return dict(value)  # already decoded by a webdataset .decode() stage


def _cls(value: Any) -> int:
    if value is None:
        return -1
    if isinstance(value, (bytes, bytearray)):
        return int(value.decode("ascii").strip())
    return int(value)
