"""Clip loading speed: KineticsDataset (PyAV) vs decord get_batch vs a naive decode-all loop.

Sparse sampling as in training (16 frames, stride 4, random start) on 256-short-side clips
(340x256, 10 s, 25 fps, noise so bitrates are realistic), with one long GOP (250: one
keyframe per clip, as CVDF's files) and one short GOP. All peers decode the same frame
indices of the same files in one run; then DataLoader throughput with 0 and 2 workers.

    python benchmarks/bench_loader.py [--clips 8] [--rounds 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from kinetix.catalog.clip import Clip
from kinetix.data import KineticsDataset
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import Manifest
from kinetix.testing.media import VideoSpec, make_video

FRAMES, STRIDE = 16, 4


def build_root(root: Path, clips: int, gop: int) -> Path:
    """A videos root of ``clips`` distinct noise clips, verified good in its manifest."""
    if manifest_path(root).exists():
        return root
    spec = VideoSpec(duration=10.0, fps=25, width=340, height=256, audio=True,
                     pattern="noise", gop=gop)  # fmt: skip
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", "k400")
        m.set_meta("layout", LabelStyle.UNDERSCORE.value)
        for i in range(clips):
            clip = Clip("k400", "train", f"bench{i:03d}-gop{gop}", 0, 10, "abseiling")
            rel = clip_relpath("train", clip.label, clip.key, LabelStyle.UNDERSCORE)
            make_video(root / rel, spec.with_(comment=f"clip {i}"))
            m.add_clips([clip], {"abseiling": 0})
            m.update("k400", "train", clip.key, state="present", path=rel, verify="good",
                     num_frames=spec.num_frames, fps=spec.fps, width=spec.width,
                     height=spec.height, trim="exact")  # fmt: skip
    return root


def naive_pyav(path: Path, indices: np.ndarray) -> np.ndarray:
    """What a first attempt does: decode and convert every frame, then pick."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack([frames[min(i, len(frames) - 1)] for i in indices])


def decord_batch(path: Path, indices: np.ndarray) -> np.ndarray:
    import decord

    return decord.VideoReader(str(path), ctx=decord.cpu(0)).get_batch(indices.tolist()).asnumpy()


def epoch_runner(ds: KineticsDataset, read: Callable[[int], object]) -> Callable[[int], None]:
    def run(epoch: int) -> None:
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            read(i)

    return run


def loader_runner(ds: KineticsDataset, workers: int) -> Callable[[int], None]:
    from torch.utils.data import DataLoader

    # persistent workers: worker start-up is paid once, in the warm-up round
    loader = DataLoader(ds, batch_size=4, num_workers=workers, persistent_workers=workers > 0)

    def run(epoch: int) -> None:
        for _ in loader:
            pass

    return run


def bench(root: Path, label: str, rounds: int) -> None:
    ds = KineticsDataset(root, "train", FRAMES, STRIDE, sampler="random", output="numpy")
    ours = "kinetix KineticsDataset (pyav)"
    runners = {
        ours: epoch_runner(ds, lambda i: ds[i]),
        "decord VideoReader.get_batch": epoch_runner(
            ds, lambda i: decord_batch(ds.clip(i).path, ds.frame_indices(i))
        ),
        "naive PyAV decode-all": epoch_runner(
            ds, lambda i: naive_pyav(ds.clip(i).path, ds.frame_indices(i))
        ),
    }
    try:
        for workers in (0, 2):
            runners[f"DataLoader, {workers} workers"] = loader_runner(ds, workers)
    except ImportError:
        print("torch not installed: DataLoader rows skipped")
    names = list(runners)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        # interleaved and rotated, so load from other processes hits every peer alike;
        # round 0 warms the page cache, codec tables and workers and is not counted
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            runners[name](r)
            if r:
                rates[name].append(len(ds) / (time.perf_counter() - start))
    median = {name: float(np.median(v)) for name, v in rates.items()}
    print(f"\n{label}: {len(ds)} clips, median of {rounds} interleaved epochs, "
          f"{FRAMES} frames stride {STRIDE}")  # fmt: skip
    for name, rate in median.items():
        print(f"  {name:34s} {rate:7.1f} clips/s   {median[ours] / rate:5.2f}x (kinetix / this)")
    versus_decord = median[ours] / median["decord VideoReader.get_batch"]
    print(f"  ratio kinetix/decord = {versus_decord:.2f} (target >= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per peer")
    parser.add_argument("--workdir", type=Path, help="keep the generated clips here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-bench-"))
    for gop, label in ((250, "long GOP (250)"), (25, "short GOP (25)")):
        root = build_root(work / f"gop{gop}", args.clips, gop)
        bench(root, f"340x256 10 s 25 fps, {label}", args.rounds)


if __name__ == "__main__":
    main()
