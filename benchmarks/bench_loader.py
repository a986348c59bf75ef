"""Clip loading speed: KineticsDataset (PyAV) vs decord get_batch vs a naive decode-all loop.

Sparse sampling as in training (16 frames, stride 4, random start) on 256-short-side clips
(340x256, 10 s, 25 fps, noise so bitrates are realistic), with one long GOP (250: one
keyframe per clip, as CVDF's files) and one short GOP. All peers decode the same frame
indices of the same files in one run; then DataLoader throughput with 0 and 2 workers.

    python benchmarks/bench_loader.py [--clips 8] [--epochs 3] [--workdir DIR]
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


def clips_per_second(ds: KineticsDataset, epochs: int, read: Callable[[int], object]) -> float:
    for i in range(len(ds)):  # warm the page cache and codec tables
        read(i)
    start = time.perf_counter()
    for epoch in range(epochs):
        ds.set_epoch(epoch + 1)
        for i in range(len(ds)):
            read(i)
    return epochs * len(ds) / (time.perf_counter() - start)


def loader_clips_per_second(ds: KineticsDataset, epochs: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=4, num_workers=workers, persistent_workers=workers > 0)
    for _ in loader:  # first epoch starts the workers; not timed
        pass
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return epochs * len(ds) / (time.perf_counter() - start)


def bench(root: Path, label: str, epochs: int) -> None:
    ds = KineticsDataset(root, "train", FRAMES, STRIDE, sampler="random", output="numpy")
    rates = {
        "kinetix KineticsDataset (pyav)": clips_per_second(ds, epochs, lambda i: ds[i]),
        "decord VideoReader.get_batch": clips_per_second(
            ds, epochs, lambda i: decord_batch(ds.clip(i).path, ds.frame_indices(i))
        ),
        "naive PyAV decode-all": clips_per_second(
            ds, epochs, lambda i: naive_pyav(ds.clip(i).path, ds.frame_indices(i))
        ),
    }
    try:
        for workers in (0, 2):
            rates[f"DataLoader, {workers} workers"] = loader_clips_per_second(ds, epochs, workers)
    except ImportError:
        print("torch not installed: DataLoader rows skipped")
    ours = rates["kinetix KineticsDataset (pyav)"]
    print(f"\n{label}: {len(ds)} clips x {epochs} epochs, {FRAMES} frames stride {STRIDE}")
    for name, rate in rates.items():
        print(f"  {name:34s} {rate:7.1f} clips/s   {ours / rate:5.2f}x (kinetix / this)")
    versus_decord = ours / rates["decord VideoReader.get_batch"]
    print(f"  ratio kinetix/decord = {versus_decord:.2f} (target >= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the generated clips here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-bench-"))
    for gop, label in ((250, "long GOP (250)"), (25, "short GOP (25)")):
        root = build_root(work / f"gop{gop}", args.clips, gop)
        bench(root, f"340x256 10 s 25 fps, {label}", args.epochs)


if __name__ == "__main__":
    main()
