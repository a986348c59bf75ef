"""``kinetix export --format ava`` against mmaction2's recipe for the same frame folders.

A synthetic K700-2020 val mirror (``--clips`` clips, 10 s, 25 fps, ``--size``), an
AVA-Kinetics file with one keyframe per clip (``kinetix.synthetic.downstream.ava_text``), and a
root made by ``download ava-kinetics`` with it. Then, in interleaved rounds:

- ``kinetix-1``: ``export_root(..., ExportConfig("ava"))``, one process;
- ``kinetix-2``: the same with ``workers=2``;
- ``recipe``: what ``tools/data/ava_kinetics`` runs per keyframe, as ffmpeg commands: cut the
  4 s window with ``ffmpeg -ss S -t 4 -i clip -r 30`` (a re-encode, as ``cut_kinetics.py``),
  then ``ffmpeg -i cut -r 30 -q:v 1 img_%05d.jpg`` (``extract_rgb_frames.py``).

Each round starts from an empty output folder. CPU seconds are this process's and its
children's (``getrusage``), beside wall; the load average is printed.

    python benchmarks/bench_ava_export.py [--rounds 3] [--clips 16] [--size 320x240]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kinetix.config import DownloadConfig
from kinetix.download import download
from kinetix.export import ExportConfig, export_root
from kinetix.export.ava import HALF_WINDOW
from kinetix.process.ffmpeg import find_ffmpeg
from kinetix.synthetic.downstream import ava_text
from kinetix.synthetic.media import VideoSpec
from kinetix.synthetic.mirror import MirrorSpec, build_mirror
from kinetix.synthetic.server import MirrorServer


def cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def make_root(work: Path, clips: int, size: tuple[int, int], data: Path) -> Path:
    spec = MirrorSpec(
        releases={"k700-2020": ("val",)},
        classes=clips,
        clips_per_class=1,
        missing=0,
        corrupted=0,
        video=VideoSpec(fps=25, width=size[0], height=size[1], audio=False, pattern="testsrc"),
        data_dir=data,
    )
    mirror = build_mirror(work / "mirror", spec)
    rows = [c.clip for c in mirror.split("k700-2020", "val").clips.values() if c.in_shard]
    annotations = work / "kinetics_val_v1.0.csv"
    annotations.write_text(ava_text(rows, seed=0))
    os.environ["KINETIX_CACHE"] = str(work / "cache")
    root = work / "root"
    with MirrorServer(mirror.root) as server:
        config = DownloadConfig(
            root=root, release="ava-kinetics", split="val", mirror=server.url,
            annotations=annotations, progress=False,
        )  # fmt: skip
        download(config)
    return root


def recipe(root: Path, out: Path) -> int:
    """mmaction2's two ffmpeg steps per keyframe, on the folders kinetix's index lists."""
    ffmpeg = find_ffmpeg().path
    with (root / "exports-probe/annotations/kinetics_val_index.csv").open(newline="") as f:
        index = list(csv.DictReader(f))
    for row in index:
        folder, clip = row["folder"], row["clip"]
        start = int(folder.rsplit("_", 2)[1])
        clip_start = int(clip.rsplit("_", 2)[1])
        cut = out / f"{folder}.mp4"
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [ffmpeg, "-v", "error", "-ss", str(start - clip_start), "-t", str(2 * HALF_WINDOW),
             "-accurate_seek", "-i", str(root / clip), "-r", "30", "-avoid_negative_ts", "1",
             "-y", str(cut)],
            check=True,
        )  # fmt: skip
        (out / folder).mkdir()
        subprocess.run(
            [ffmpeg, "-v", "error", "-i", str(cut), "-r", "30", "-q:v", "1",
             str(out / folder / "img_%05d.jpg")],
            check=True,
        )  # fmt: skip
    return len(index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--data", type=Path, default=None, help="the real annotation folder")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    data = args.data or Path(
        os.environ.get("KINETIX_SHARED_DATA")
        or Path(__file__).resolve().parents[2] / "shared/data/kinetics"
    )
    with tempfile.TemporaryDirectory(prefix="kx-bench-ava-") as tmp:
        work = Path(tmp)
        root = make_root(work, args.clips, size, data)  # type: ignore[arg-type]
        probe = export_root(root, ExportConfig("ava", out=root / "exports-probe"))
        keyframes = probe.written
        runners: dict[str, Callable[[Path], object]] = {
            "kinetix-1": lambda out: export_root(root, ExportConfig("ava", out=out)),
            "kinetix-2": lambda out: export_root(root, ExportConfig("ava", out=out, workers=2)),
            "recipe": lambda out: recipe(root, out),
        }
        walls: dict[str, list[float]] = {k: [] for k in runners}
        cpus: dict[str, list[float]] = {k: [] for k in runners}
        jpeg_kb: dict[str, float] = {}  # output size: the runners' JPEG qualities differ
        for _ in range(args.rounds):
            for name, run in runners.items():
                out = work / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                cpu0, wall0 = cpu_seconds(), time.perf_counter()
                run(out)
                walls[name].append(time.perf_counter() - wall0)
                cpus[name].append(cpu_seconds() - cpu0)
                sizes = [p.stat().st_size for p in out.rglob("*.jpg")]
                jpeg_kb[name] = sum(sizes) / max(len(sizes), 1) / 1000
        frames = keyframes * 2 * HALF_WINDOW * 30
        print(f"{keyframes} keyframes, {frames} frames at {args.size}; load {os.getloadavg()}")
        print(f"{'runner':10} {'wall s':>16} {'CPU s':>16} {'CPU ms/frame':>13} {'KB/frame':>9}")
        for name in runners:
            w, c = walls[name], cpus[name]
            print(
                f"{name:10} {statistics.median(w):7.2f} ({min(w):.2f}-{max(w):.2f}) "
                f"{statistics.median(c):7.2f} ({min(c):.2f}-{max(c):.2f}) "
                f"{1000 * statistics.median(c) / frames:13.2f} {jpeg_kb[name]:9.1f}"
            )
        ratio = statistics.median(cpus["recipe"]) / statistics.median(cpus["kinetix-1"])
        print(f"recipe / kinetix-1 CPU: {ratio:.2f}x")


if __name__ == "__main__":
    main()
