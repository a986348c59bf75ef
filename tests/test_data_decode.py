"""PyAVDecoder skips what sampling does not need and still returns exactly the chosen frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from kinetix.data import PyAVDecoder, RandomClipSampler
from kinetix.data.decoders import (
    TorchCodecDecoder,
    _needed_frames,
    _open_for_decoding,
    decode_threads,
    read_bytes,
)
from kinetix.errors import MissingDependencyError
from kinetix.process.ffmpeg import file_arg, run_ffmpeg
from kinetix.synthetic.media import VideoSpec, make_video

# x264's defaults (preset medium): B-frames, some of them non-reference, as in CVDF's clips
SCENE = VideoSpec(4.0, 25, 96, 64, audio=False, pattern="scene", preset="medium", crf=23)


@pytest.fixture(scope="module", params=[100, 12], ids=["one-keyframe", "gop12"])
def clip(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("decode") / f"gop{request.param}.mp4"
    return make_video(path, SCENE.with_(gop=request.param))


def reference(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Every frame, decoded plainly (a full open, no seek, no skipping, one thread, a fresh
    colour converter per frame), as RGB."""
    scale = {} if size is None else {"width": size[0], "height": size[1]}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return np.stack([f.to_ndarray(format="rgb24", **scale) for f in container.decode(stream)])


def test_the_clip_has_non_reference_frames_to_skip(clip) -> None:
    with av.open(str(clip)) as container:
        types = [int(f.pict_type) for f in container.decode(video=0)]
    assert len(types) == SCENE.num_frames and types.count(3) > 10  # AV_PICTURE_TYPE_B


@pytest.mark.parametrize("threads", [1, 2, 0])
def test_sampled_frames_equal_a_plain_decode(clip, threads) -> None:
    every = reference(clip)
    sampler = RandomClipSampler(8, frame_stride=4)
    rng = np.random.default_rng(threads)
    decoder = PyAVDecoder(threads=threads)
    picks = [sampler(len(every), 25.0, rng) for _ in range(12)]
    picks += [np.array([[0, 1, 2, 3]]), np.array([[96, 97, 98, 99]]), np.array([[5, 5, 50, 7]])]
    for indices in picks:
        got = decoder.read(clip, indices)
        assert got.shape == (indices.size, 64, 96, 3)
        np.testing.assert_array_equal(got, every[indices.ravel()], err_msg=str(indices))


@pytest.mark.parametrize("threads", [1, 0])
def test_resized_reads_equal_a_plain_decodes_conversion(clip, threads) -> None:
    every = reference(clip, size=(48, 32))
    indices = np.array([[9, 13, 17, 21, 60, 61]])
    got = PyAVDecoder(threads=threads).read(clip, indices, size=(48, 32))
    np.testing.assert_array_equal(got, every[indices.ravel()])


def test_one_colour_converter_per_read_with_the_decodes_share_of_threads(clip, monkeypatch) -> None:
    # why: to_ndarray makes a converter per frame, and in FFmpeg 8 each one starts a pool of
    # one thread per core: 32 threads started and joined per 16-frame read in every worker
    made: list[object] = []
    calls: list[object] = []
    real = av.video.reformatter.VideoReformatter

    class Counting:
        def __init__(self) -> None:
            made.append(self)
            self.inner = real()

        def reformat(self, frame, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(kwargs.get("threads"))
            return self.inner.reformat(frame, **kwargs)

    monkeypatch.setattr(av.video.reformatter, "VideoReformatter", Counting)
    PyAVDecoder(threads=1).read(clip, np.array([[2, 6, 10, 14, 18, 22, 26, 30]]))
    assert len(made) == 1 and calls == [1] * 8


def test_mp4_opens_skip_the_trial_decode_other_containers_do_not(clip, tmp_path) -> None:
    mkv = tmp_path / "copy.mkv"
    run_ffmpeg(["-i", file_arg(clip), "-c", "copy", "-f", "matroska", "-y", file_arg(mkv)])
    with _open_for_decoding(av, clip) as container:  # the probe decoded no frame ...
        assert container.streams.video[0].codec_context.format is None
    with _open_for_decoding(av, mkv) as container:  # ... Matroska's did: rate, reorder depth
        assert container.streams.video[0].codec_context.format is not None
    every = reference(clip)
    indices = np.array([[0, 33, 37, 41, 45, 80, 99]])
    for source in (clip, mkv, read_bytes(clip.read_bytes())):
        got = PyAVDecoder(threads=1).read(source, indices)
        np.testing.assert_array_equal(got, every[indices.ravel()], err_msg=str(source))


def test_unwanted_non_reference_frames_are_not_decoded(clip) -> None:
    wanted = np.array([40, 44, 48, 52])
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        fps = float(stream.average_rate)
        tb, origin = float(stream.time_base), stream.start_time or 0
        number = lambda pts: round((pts - origin) * tb * fps)  # noqa: E731
        frames = list(_needed_frames(container, stream, wanted, number))
        numbers = [round((f.pts - origin) * tb * fps) for f in frames]
    assert set(wanted) <= set(numbers)
    assert numbers == sorted(numbers)  # presentation order
    assert len(numbers) < 53  # some of frames 0-52 were never decoded ...
    assert max(numbers) <= 52 + 3  # ... and reading stopped with the last wanted packet


def test_decode_threads_share_the_cores_among_dataloader_workers() -> None:
    torch = pytest.importorskip("torch")
    import os

    class Threads(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> int:
            return decode_threads()

    assert decode_threads() == 0  # the main process: libav uses every core
    loader = torch.utils.data.DataLoader(Threads(), num_workers=2, batch_size=None)
    cores = len(os.sched_getaffinity(0))
    assert [int(t) for t in loader] == [max(1, cores // 2)] * 2


def test_torchcodec_reads_the_same_frames(clip) -> None:
    try:
        decoder = TorchCodecDecoder()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    every = reference(clip)
    indices = np.array([[3, 7, 11, 60, 61]])
    got = decoder.read(clip, indices)
    # another build of libavcodec/swscale: the same frames, up to colour-conversion rounding
    assert got.shape == (5, 64, 96, 3)
    assert np.abs(got.astype(int) - every[indices.ravel()]).mean() < 2
