"""Datasets, samplers and decoders over a kinetix root; torch is imported only when used."""

from kinetix.data.datasets import KineticsDataset, RawFramesDataset
from kinetix.data.decoders import (
    DecordDecoder,
    JpegFolderReader,
    PyAVDecoder,
    TorchCodecDecoder,
    VideoDecoder,
    make_decoder,
)
from kinetix.data.downstream_datasets import (
    AvaKineticsDataset,
    CountixDataset,
    collate_keyframes,
)
from kinetix.data.index import ClipIndex, RootInfo
from kinetix.data.samplers import (
    FrameSampler,
    MultiViewSampler,
    RandomClipSampler,
    UniformSampler,
    make_sampler,
)
from kinetix.data.streaming import ShardSampleDecoder

__all__ = [
    "AvaKineticsDataset",
    "ClipIndex",
    "CountixDataset",
    "DecordDecoder",
    "FrameSampler",
    "JpegFolderReader",
    "KineticsDataset",
    "MultiViewSampler",
    "PyAVDecoder",
    "RandomClipSampler",
    "RawFramesDataset",
    "RootInfo",
    "ShardSampleDecoder",
    "TorchCodecDecoder",
    "UniformSampler",
    "VideoDecoder",
    "collate_keyframes",
    "make_decoder",
    "make_sampler",
]
