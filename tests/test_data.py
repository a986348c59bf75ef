"""Datasets load the right frames of the right clips, deterministically, in DataLoader workers."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from _roots import TINY, RootClip, build_frames_root, build_videos_root, clips, cut_fast

from kinetix.catalog.labels import LabelRegistry
from kinetix.data import KineticsDataset, PyAVDecoder, RawFramesDataset, ShardSampleDecoder
from kinetix.errors import ConfigError, DecodeError, ManifestError, MissingDependencyError
from kinetix.export import ExportConfig, export_root
from kinetix.synthetic.media import frame_index, make_video

K400 = LabelRegistry.for_release("k400")
GOOD = clips("train", ["abseiling", "air drumming", "zumba", "yoga"])
FAST, BAD, UNVERIFIED = clips("train", ["abseiling"] * 3, start=10)
FAST_START = 1.3  # seconds cut off with -c copy; the keyframe before it is frame 30
SHOWN_FIRST: dict[str, int] = {}  # source frame a player shows first, per clip key


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("videos")
    source = make_video(base / "src.mp4", TINY)
    SHOWN_FIRST[FAST.key] = cut_fast(source, base / "fast.mp4", FAST_START)
    assert SHOWN_FIRST[FAST.key] == 33  # 1.32 s, the first frame at or after 1.3 s
    items = [RootClip(c) for c in GOOD] + [
        RootClip(FAST, trim="fast", media=base / "fast.mp4"),
        RootClip(BAD, verify="bad"),
        RootClip(UNVERIFIED, verify=None, store_index=False),
    ]
    return build_videos_root(base / "root", items)


def shown(frames) -> list[int]:
    """The source frame number painted on each frame."""
    return [frame_index(f) for f in np.asarray(frames)]


def first_shown(ds: KineticsDataset, i: int) -> int:
    """Frame 0 of the fast-trimmed clip is source frame 33: a player starts there."""
    return SHOWN_FIRST.get(ds.clip(i).key, 0)


def test_random_clips_are_the_frames_the_sampler_chose(root) -> None:
    ds = KineticsDataset(root, "train", frames_per_clip=8, frame_stride=4, output="numpy")
    assert len(ds) == len(GOOD) + 1  # bad and unverified rows are skipped
    assert {ds.clip(i).key for i in range(len(ds))} == {c.key for c in [*GOOD, FAST]}
    for i in range(len(ds)):
        frames, label = ds[i]
        assert frames.shape == (8, 80, 64, 3) and frames.dtype == np.uint8
        chosen, n = ds.frame_indices(i), ds.clip(i).num_frames
        # stride 4 from a random start; the 17-frame fast clip repeats its last frame
        assert chosen.tolist() == np.minimum(chosen[0] + 4 * np.arange(8), n - 1).tolist()
        assert 0 <= chosen[0] <= max(n - 29, 0)
        assert shown(frames) == list(chosen + first_shown(ds, i))
        assert label == K400.index(_label(ds.clip(i).key))


def _label(key: str) -> str:
    return next(c.label for c in [*GOOD, FAST, BAD, UNVERIFIED] if c.key == key)


def test_same_seed_same_frames_new_epoch_new_frames(root) -> None:
    a = KineticsDataset(root, "train", frames_per_clip=4, frame_stride=2, seed=7, output="numpy")
    b = KineticsDataset(root, "train", frames_per_clip=4, frame_stride=2, seed=7, output="numpy")
    for i in range(len(a)):
        assert np.array_equal(a[i][0], b[i][0])
    before = [a.frame_indices(i).tolist() for i in range(len(a))]
    a.set_epoch(1)
    assert [a.frame_indices(i).tolist() for i in range(len(a))] != before
    other = KineticsDataset(root, "train", frames_per_clip=4, frame_stride=2, seed=8)
    assert [other.frame_indices(i).tolist() for i in range(len(a))] != before


def test_multiview_uniform_and_short_side(root) -> None:
    mv = KineticsDataset(root, "train", frames_per_clip=4, frame_stride=3, sampler="multiview",
                         num_views=3, output="numpy")  # fmt: skip
    frames, _ = mv[0]
    assert frames.shape == (3, 4, 80, 64, 3)
    assert [shown(v) for v in frames] == [[0, 3, 6, 9], [20, 23, 26, 29], [40, 43, 46, 49]]

    uni = KineticsDataset(root, "train", frames_per_clip=5, sampler="uniform", output="numpy")
    assert shown(uni[0][0]) == [5, 15, 25, 35, 45]  # segment centres of 50 frames

    small = KineticsDataset(root, "train", frames_per_clip=2, short_side=32, output="numpy")
    assert small[0][0].shape == (2, 40, 32, 3)
    with pytest.raises(ConfigError, match="num_views only applies"):
        KineticsDataset(root, "train", num_views=2)


def test_include_unverified_and_clear_errors(root, tmp_path) -> None:
    ds = KineticsDataset(root, "train", include_unverified=True, output="numpy")
    keys = {ds.clip(i).key for i in range(len(ds))}
    assert UNVERIFIED.key in keys and BAD.key not in keys
    # its label_index is NULL in the manifest: the label registry fills it in
    i = next(i for i in range(len(ds)) if ds.clip(i).key == UNVERIFIED.key)
    assert ds[i][1] == K400.index("abseiling")
    with pytest.raises(ConfigError, match="no split 'val'"):
        KineticsDataset(root, "val")
    with pytest.raises(ConfigError, match="valid values are"):
        KineticsDataset(root, "train", decoder="opencv")
    with pytest.raises(ManifestError, match="kinetix download"):
        KineticsDataset(tmp_path, "train")


def test_numpy_or_torch_output(root) -> None:
    torch = pytest.importorskip("torch")
    frames, _ = KineticsDataset(root, "train", frames_per_clip=2, output="torch")[0]
    assert isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8
    auto, _ = KineticsDataset(root, "train", frames_per_clip=2)[0]
    assert isinstance(auto, torch.Tensor)  # "auto": torch when it is installed
    assert isinstance(KineticsDataset(root, "train", output="numpy")[0][0], np.ndarray)


def test_dataloader_with_two_workers_and_distributed_sampler(root) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, DistributedSampler

    ds = KineticsDataset(root, "train", frames_per_clip=4, frame_stride=2, seed=3)
    expected = {i: ds[i] for i in range(len(ds))}
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    frames = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert frames.shape == (len(ds), 4, 80, 64, 3)
    for i in range(len(ds)):  # workers draw exactly what the main process draws
        assert torch.equal(frames[i], expected[i][0]) and labels[i] == expected[i][1]

    seen: set[int] = set()
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        order = list(sampler)
        got = [int(b[1][0]) for b in DataLoader(ds, batch_size=1, sampler=sampler)]
        assert got == [int(ds.labels[i]) for i in order]
        seen.update(order)
    assert seen == set(range(len(ds)))  # the two ranks share the clips between them


def test_dataset_pickles_without_connections_or_decoders(root) -> None:
    ds = KineticsDataset(root, "train", frames_per_clip=2, output="numpy")
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._decoder is None
    assert np.array_equal(clone[0][0], ds[0][0])


def test_decord_reads_the_same_frames_but_not_fast_trimmed_clips(root) -> None:
    decord = pytest.importorskip("decord")
    ds = KineticsDataset(root, "train", frames_per_clip=6, frame_stride=3, decoder="decord",
                         output="numpy")  # fmt: skip
    fast = next(i for i in range(len(ds)) if ds.clip(i).key == FAST.key)
    normal = 0 if fast else 1
    assert shown(ds[normal][0]) == list(ds.frame_indices(normal))
    with pytest.warns(RuntimeWarning, match="edit lists"):
        frames, _ = ds[fast]
    assert shown(frames) == list(ds.frame_indices(fast) + first_shown(ds, fast))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per dataset, not per clip
        ds[fast]

    # why: decord counts the frames behind the edit list and indexes them wrongly
    reader = decord.VideoReader(str(ds.clip(fast).path))
    assert len(reader) != ds.clip(fast).num_frames
    last = len(reader) - 1
    assert frame_index(reader[last].asnumpy()) != last + first_shown(ds, fast)


def test_torchcodec_needs_installing(root) -> None:
    try:
        import torchcodec  # noqa: F401
    except ImportError:
        match = "pip install torchcodec"
    except (OSError, RuntimeError):  # installed, but its libraries do not load (CUDA build)
        match = "torchcodec is installed but does not load"
    else:
        pytest.skip("torchcodec is installed")
    with pytest.raises(MissingDependencyError, match=match):
        KineticsDataset(root, "train", decoder="torchcodec")


def test_pyav_decoder_seeks_once_and_handles_odd_requests(tmp_path) -> None:
    path = make_video(tmp_path / "long.mp4", TINY.with_(duration=4.0, gop=25))
    decoder = PyAVDecoder()
    info = decoder.probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (100, 25.0, 64, 80)
    # unsorted, repeated, past the end (repeats the last frame), after a keyframe
    got = decoder.read(path, np.array([77, 30, 30, 99, 140, 51]))
    assert shown(got) == [77, 30, 30, 99, 99, 51]
    with open(path, "rb") as f:  # bytes, as a WebDataset sample has them
        assert shown(decoder.read(f, np.array([60, 61]))) == [60, 61]
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(DecodeError, match=r"junk\.mp4"):
        decoder.read(tmp_path / "junk.mp4", np.array([0]))


def test_raw_frames_dataset_reads_the_chosen_jpgs(root, tmp_path) -> None:
    frames_root = build_frames_root(tmp_path / "frames", root)
    ds = RawFramesDataset(frames_root, "train", frames_per_clip=5, frame_stride=4, seed=2,
                          output="numpy")  # fmt: skip
    assert len(ds) == len(GOOD) + 1
    for i in range(len(ds)):
        frames, label = ds[i]
        assert frames.shape == (5, 80, 64, 3) and label == K400.index(_label(ds.clip(i).key))
        assert shown(frames) == list(ds.frame_indices(i) + first_shown(ds, i))
    assert (
        ds.frame_indices(0).tolist()
        == KineticsDataset(root, "train", frames_per_clip=5, frame_stride=4, seed=2)
        .frame_indices(0)
        .tolist()
    )  # same sampler, same seed: same frames as from the videos
    small = RawFramesDataset(frames_root, "train", frames_per_clip=2, short_side=32, output="numpy")
    assert small[0][0].shape == (2, 40, 32, 3)
    with pytest.raises(ConfigError, match="RawFramesDataset"):
        KineticsDataset(frames_root, "train")
    with pytest.raises(ConfigError, match="KineticsDataset"):
        RawFramesDataset(root, "train")


def test_webdataset_shards_stream_into_clips(root, tmp_path) -> None:
    """The example in kinetix.data.streaming, run for real."""
    wds = pytest.importorskip("webdataset")
    report = export_root(root, ExportConfig("webdataset", out=tmp_path, shard_size="2"))
    pattern = str(report.splits[0].output)
    decode = ShardSampleDecoder(frames_per_clip=4, frame_stride=5, seed=1, output="numpy")
    stream = wds.WebDataset(pattern, shardshuffle=False).map(decode)
    got = list(stream)
    assert len(got) == len(GOOD) + 1
    for (frames, label), sample in zip(got, wds.WebDataset(pattern, shardshuffle=False)):
        steps = np.diff(shown(frames))
        assert frames.shape == (4, 80, 64, 3) and np.all(steps == 5)
        assert label == int(sample["cls"])
    again = [f for f, _ in wds.WebDataset(pattern, shardshuffle=False).map(decode)]
    assert all(np.array_equal(x, y) for (x, _), y in zip(got, again))


def test_kinetix_imports_and_loads_without_torch(root) -> None:
    script = f"""
import sys
sys.modules["torch"] = None  # as if torch were not installed
import numpy as np
from kinetix.data import KineticsDataset
from kinetix.errors import MissingDependencyError
frames, label = KineticsDataset({str(root)!r}, "train", frames_per_clip=2)[0]
assert isinstance(frames, np.ndarray), type(frames)
try:
    KineticsDataset({str(root)!r}, "train", output="torch")
except MissingDependencyError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install 'kinetix[torch]'" in out.stdout


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 4 workers, 2 cores
def test_the_documented_webdataset_example_runs(root, tmp_path) -> None:
    """Executes the example in ``kinetix.data.streaming``'s docstring, as written."""
    pytest.importorskip("webdataset")
    pytest.importorskip("torch")
    import kinetix.data.streaming as streaming

    doc = streaming.__doc__ or ""
    code = textwrap.dedent(doc.split("::", 1)[1])
    assert '"shards/train-{000000..000009}.tar"' in code
    pattern = str(export_root(root, ExportConfig("webdataset", out=tmp_path, shard_size="1"))
                  .splits[0].output)  # fmt: skip
    namespace: dict = {}
    exec(code.replace('"shards/train-{000000..000009}.tar"', repr(pattern)), namespace)
    batches = list(namespace["loader"])  # 4 workers: as many shards or more (5 here)
    assert sum(len(labels) for _, labels in batches) == len(GOOD) + 1
    assert all(frames.shape[1:] == (16, 80, 64, 3) for frames, _ in batches)


def test_a_fast_trims_lead_in_before_time_start_is_never_sampled(tmp_path) -> None:
    """A `fast` YouTube trim starts at the keyframe before time_start and records it as a
    negative start_offset; only the annotated span after that lead-in is sampled."""
    (clip,) = clips("train", ["abseiling"])
    root = build_videos_root(tmp_path / "root", [RootClip(clip, trim="fast")])
    from kinetix.store.layout import manifest_path
    from kinetix.store.manifest import Manifest

    with Manifest(manifest_path(root)) as m:
        m.update("k400", "train", clip.key, start_offset=-1.0)  # 25 frames of lead-in at 25 fps
    ds = KineticsDataset(root, "train", frames_per_clip=4, frame_stride=2, output="numpy")
    assert ds.clip(0).lead_seconds == 1.0
    for epoch in range(8):
        ds.set_epoch(epoch)
        chosen = ds.frame_indices(0)
        assert chosen.min() >= 25
        frames, _ = ds[0]
        assert shown(frames) == list(chosen)
