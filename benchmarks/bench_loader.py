"""Clip loading speed in a DataLoader: KineticsDataset (PyAV) vs decord vs torchcodec.

Sparse sampling as in training (16 frames, stride 4, random start) on 256-short-side clips
(340x256, 10 s, 25 fps, the ``scene`` pattern encoded with libx264's defaults: preset
medium, crf 23, B-frames, as CVDF's clips and mmaction2's resized ones), once with one
keyframe per clip (GOP 250, as CVDF's files) and once with a short GOP (12). Every peer is a
Dataset that reads the same frame indices of the same files (``KineticsDataset.frame_indices``)
and runs in the same DataLoader (``--workers`` workers, batch 4, persistent workers):

- kinetix ``KineticsDataset`` (PyAV: one seek, unwanted non-reference frames skipped, reading
  stopped after the last wanted packet, one decode thread per worker on 2 cores, one colour
  converter per read on that thread, MP4s opened without the trial decode);
- decord ``VideoReader.get_batch`` with its default threads (0: FFmpeg picks) and with 1;
- torchcodec ``VideoDecoder.get_frames_at`` (exact seek mode) with 1 FFmpeg thread (its
  default) and with 0, when torchcodec imports.

``--sources`` distinct encodes per GOP are copied to ``--clips`` files (decoding cost is the
same; the page cache holds them all). Rounds are interleaved with the order rotated; round 0
warms caches and workers and is not counted. Printed: clips/s from the median epoch, the
range over rounds, and CPU seconds of this process and its workers (steadier than wall time
on a shared machine).

    python benchmarks/bench_loader.py [--clips 200] [--sources 8] [--rounds 3] [--workers 2]
        [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Dataset

from kinetix.catalog.clip import Clip
from kinetix.data import KineticsDataset
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec, make_video

FRAMES, STRIDE = 16, 4
SPEC = VideoSpec(10.0, 25, 340, 256, audio=True, pattern="scene", preset="medium", crf=23)


def build_root(root: Path, clips: int, sources: int, gop: int) -> Path:
    """A videos root of ``clips`` files copied from ``sources`` encodes, verified good."""
    stamp = root / ".built"
    if stamp.exists() and stamp.read_text() == f"{clips} {sources} {SPEC}":
        return root
    shutil.rmtree(root, ignore_errors=True)
    spec = SPEC.with_(gop=gop)
    encodes = [
        make_video(root / f".source{s}.mp4", spec.with_(seed=s, comment=f"source {s}"))
        for s in range(sources)
    ]
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", "k400")
        m.set_meta("layout", LabelStyle.UNDERSCORE.value)
        for i in range(clips):
            clip = Clip("k400", "train", f"bench{i:03d}-gop{gop}", 0, 10, "abseiling")
            rel = clip_relpath("train", clip.label, clip.key, LabelStyle.UNDERSCORE)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(encodes[i % sources], root / rel)
            m.add_clips([clip], {"abseiling": 0})
            m.update("k400", "train", clip.key, state="present", path=rel, verify="good",
                     num_frames=spec.num_frames, fps=spec.fps, width=spec.width,
                     height=spec.height, trim="exact")  # fmt: skip
    for encode in encodes:
        encode.unlink()
    stamp.write_text(f"{clips} {sources} {SPEC}")
    return root


class Peer(Dataset):
    """Reads ``ds``'s clips at ``ds``'s frame indices with another decoder."""

    def __init__(self, ds: KineticsDataset, read: Callable[[Path, np.ndarray], np.ndarray]):
        self.ds, self.read = ds, read

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        frames = self.read(self.ds.clip(i).path, self.ds.frame_indices(i))
        return torch.as_tensor(frames)


def decord_reader(threads: int) -> Callable[[Path, np.ndarray], np.ndarray]:
    def read(path: Path, indices: np.ndarray) -> np.ndarray:
        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
        return reader.get_batch(indices.ravel().tolist()).asnumpy()

    return read


def torchcodec_reader(threads: int) -> Callable[[Path, np.ndarray], np.ndarray]:
    def read(path: Path, indices: np.ndarray) -> np.ndarray:
        from torchcodec.decoders import VideoDecoder

        decoder = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads)
        return decoder.get_frames_at(indices=indices.ravel().tolist()).data.numpy()

    return read


def torchcodec_available() -> str | None:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # ImportError, or its FFmpeg libraries missing (RuntimeError)
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return None


def cpu_now() -> float:
    """CPU seconds of this process and all its live children (the DataLoader's workers)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def bench(root: Path, label: str, rounds: int, workers: int) -> dict[str, list[tuple]]:
    ds = KineticsDataset(root, "train", FRAMES, STRIDE, sampler="random", output="numpy")
    peers: dict[str, Dataset] = {
        "kinetix KineticsDataset (pyav)": ds,
        "decord get_batch, threads 0 (default)": Peer(ds, decord_reader(0)),
        "decord get_batch, threads 1": Peer(ds, decord_reader(1)),
    }
    missing = torchcodec_available()
    if missing is None:
        peers["torchcodec get_frames_at, threads 1 (default)"] = Peer(ds, torchcodec_reader(1))
        peers["torchcodec get_frames_at, threads 0"] = Peer(ds, torchcodec_reader(0))
    else:
        print(f"torchcodec rows skipped: {missing}")
    loaders = {
        name: DataLoader(d, batch_size=4, num_workers=workers, persistent_workers=workers > 0)
        for name, d in peers.items()
    }
    names = list(loaders)
    got: dict[str, list[tuple]] = {name: [] for name in names}
    for r in range(rounds + 1):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = cpu_now(), time.perf_counter()
            for _ in loaders[name]:
                pass
            wall, cpu = time.perf_counter() - t0, cpu_now() - c0
            if r:
                got[name].append((wall, cpu))
    print(f"\n{label}: {len(ds)} clips, DataLoader {workers} workers, {FRAMES} frames stride "
          f"{STRIDE}, {rounds} interleaved rounds: median (min-max); load "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    ours = names[0]
    for name in names:
        walls = [w for w, _ in got[name]]
        cpus = [c for _, c in got[name]]
        rates = [len(ds) / w for w in walls]
        wall_x = [w / o for (w, _), (o, _) in zip(got[name], got[ours])]
        cpu_x = [c / o for (_, c), (_, o) in zip(got[name], got[ours])]
        print(f"  {name:46s} {statistics.median(rates):6.1f} clips/s ({min(rates):.1f}-"
              f"{max(rates):.1f})  cpu {statistics.median(cpus):5.1f} s  kinetix is "
              f"{statistics.median(wall_x):.2f}x wall ({min(wall_x):.2f}-{max(wall_x):.2f}), "
              f"{statistics.median(cpu_x):.2f}x cpu "
              f"({min(cpu_x):.2f}-{max(cpu_x):.2f})")  # fmt: skip
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--sources", type=int, default=8, help="distinct encodes per GOP")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per peer (>= 3)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, every peer")
    parser.add_argument("--gops", default="250,12", help="keyframe intervals to measure")
    parser.add_argument("--workdir", type=Path, help="keep the generated clips here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-bench-"))
    torch.set_num_threads(1)
    for gop in (int(g) for g in args.gops.split(",")):
        root = build_root(work / f"gop{gop}", args.clips, args.sources, gop)
        bench(root, f"340x256 10 s 25 fps x264 medium, GOP {gop}", args.rounds, args.workers)
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
