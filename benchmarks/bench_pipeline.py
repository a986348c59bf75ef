"""Shards to a training-ready 256 root: fused `download --short-side` vs the chains users run.

    python benchmarks/bench_pipeline.py [--shards 2] [--clips-per-shard 30] [--cap-mbps 2]
        [--rounds 3] [--parallel 2] [--connections 8] [--workdir DIR]

A K400-val-shaped mirror (``--shards`` class-mixed ``part_N.tar.gz``) of realistic long-GOP
clips, realistic in number per shard too (a shard's last clip is checked and transcoded only
after its last byte arrives, so a shard of 4 clips exaggerates what that tail costs; CVDF's K400
train shards hold ~1000 clips of ~1.8 MB each): the ``scene`` pattern (a camera panning over a
natural-statistics picture, light grain) at 640x360, 10 s, 25 fps, libx264 preset medium
crf 23, one keyframe per clip (GOP 250), AAC audio. It is served from its own process on
127.0.0.1 with a total link cap. Each method runs as its own process into an empty folder,
every round, the order rotated each round:

- ``download``: ``kinetix download`` (inline verification on, the default);
- ``download, no inline verify``: the same with ``DownloadConfig(inline_verify=False)``;
- ``transcode only``: ``kinetix process --short-side 256`` of an already downloaded root of the
  same clips (no network);
- ``fused``: ``kinetix download --short-side 256``;
- ``chain``: ``kinetix download; kinetix verify; kinetix process --short-side 256; kinetix
  verify`` of the derived root;
- ``seed flow``: ``axel -n 8`` per shard (curl when axel is missing), ``--parallel`` shards at a
  time, each shard unpacked with ``tar xzf`` as soon as it lands, then the resize loop of
  mmaction2's ``resize_videos.py`` (``ffmpeg -i IN -vf scale=-2:256 -c:v libx264 -c:a copy``,
  preset medium, crf 23) with as many processes as kinetix uses (2 on 2 cores).

Every peer's ffmpeg is the binary kinetix uses. Printed per method: median wall (min-max),
median CPU seconds of the process tree (user+sys, GNU time), the mirror server's CPU, and how
many cores other processes kept busy meanwhile; then the targets: inline verification ≤ 5%
of the download's wall time, fused ≤ 1.1 × max(download, transcode only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _mirror_process import MirrorProcess
from bench_download import MB, Measured, loadavg, run_measured, shell, write_urls

from kinetix.process.ffmpeg import find_ffmpeg
from kinetix.synthetic.media import VideoSpec
from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, build_mirror_into

MAX_CLASSES = 8
VIDEO = VideoSpec(
    duration=10.0, fps=25, width=640, height=360, audio=True, pattern="scene",
    gop=250, preset="medium", crf=23,
)  # fmt: skip
TARGET_VERIFY = 0.05  # inline verification's share of the download's wall time
TARGET_FUSED = 1.1  # fused / max(download, transcode only)

_NO_VERIFY = """
import sys
from kinetix.config import DownloadConfig
from kinetix.download import download
root, mirror, parallel, connections = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from kinetix.config import TransferConfig
download(DownloadConfig(release="k400", split="val", root=root, mirror=mirror, progress=False,
                        parallel=parallel, transfer=TransferConfig(connections=connections),
                        inline_verify=False))
"""


def kinetix() -> list[str]:
    exe = Path(sys.executable).with_name("kinetix")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kinetix.cli.main"]


def mirror_for(args: argparse.Namespace, work: Path) -> MirrorIndex:
    clips = args.shards * args.clips_per_shard
    root = work / f"mirror-{args.shards}x{args.clips_per_shard}-{VIDEO.width}x{VIDEO.height}"
    if (root / "mirror.json").exists():
        return MirrorIndex.load(root)
    # the shipped excerpt of K400 val holds 8 classes: more clips means more clips per class
    classes = max(c for c in range(1, MAX_CLASSES + 1) if clips % c == 0 and clips // c >= 2)
    spec = MirrorSpec(
        releases={"k400": ("val",)}, classes=classes, clips_per_class=clips // classes,
        shard_size=args.clips_per_shard, plain_tar_shard=False,
        appledouble=False, corrupted=0, missing=0, video=VIDEO, clip_duration=VIDEO.duration,
    )  # fmt: skip
    print(f"building {clips} clips in {args.shards} shards ...", file=sys.stderr, flush=True)
    return build_mirror_into(root, spec)


@dataclass
class Method:
    name: str
    script: str | list[str]  # argv, or a bash script; RUN and SRC are substituted
    runs: list[Measured] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def argv(self, run: Path, src: Path) -> list[str]:
        if isinstance(self.script, str):
            return shell(self.script.replace("RUN", str(run)).replace("SRC", str(src)))
        return [a.replace("RUN", str(run)).replace("SRC", str(src)) for a in self.script]


def methods(url: str, urls: Path, args: argparse.Namespace, ffmpeg: str) -> list[Method]:
    k = " ".join(kinetix())
    flags = f"--mirror {url} --no-progress --parallel {args.parallel}"
    flags += f" --connections {args.connections}"
    dl = f"{k} download k400 --split val {flags}"
    fetcher = (
        f"axel -q -n {args.connections} -o RUN/targz/$(basename {{}}) {{}}"
        if shutil.which("axel")
        else "curl -s -o RUN/targz/$(basename {}) {}"
    )
    resize = (
        f'{ffmpeg} -nostdin -hide_banner -loglevel panic -i "$1" -vf scale=-2:256 '
        f'-c:v libx264 -preset medium -crf 23 -c:a copy -y RUN/resized/$(basename "$1")'
    )
    jobs = 2  # what kinetix process runs on 2 cores: one clip per core
    return [
        Method("download", f"{dl} --root RUN/root"),
        Method(
            "download, no inline verify",
            [
                sys.executable,
                "-c",
                _NO_VERIFY,
                "RUN/root",
                url,
                str(args.parallel),
                str(args.connections),
            ],
        ),
        Method(
            "transcode only (kinetix process)",
            f"{k} process SRC --out RUN/root --short-side 256 --no-progress",
        ),
        Method("fused: download --short-side 256", f"{dl} --root RUN/root --short-side 256"),
        Method(
            "chain: download; verify; process; verify",
            f"{dl} --root RUN/videos && {k} verify RUN/videos --no-progress && "
            f"{k} process RUN/videos --out RUN/root --short-side 256 --no-progress && "
            f"{k} verify RUN/root --no-progress",
        ),
        Method(
            "seed: axel -n 8 + tar xzf per shard, ffmpeg resize loop",
            f"mkdir -p RUN/targz RUN/val RUN/resized && xargs -P {args.parallel} -I{{}} sh -c "
            f"'{fetcher} && tar xzf RUN/targz/$(basename {{}}) -C RUN/val' < {urls} && "
            f"find RUN/val -name '*.mp4' -print0 | xargs -0 -P {jobs} -n 1 sh -c '{resize}' _",
        ),
    ]


def outputs(run: Path) -> int:
    return sum(
        1
        for p in run.rglob("*.mp4")
        if ".kinetix" not in p.parts and not p.name.startswith(".")
        and ("resized" in p.parts or "root" in p.parts)
    )  # fmt: skip


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--clips-per-shard", type=int, default=30)
    parser.add_argument("--cap-mbps", type=float, default=2.0, help="link cap, MB/s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="shards at a time, every method")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--only", help="comma-separated method name prefixes")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    index = mirror_for(args, work)
    split = index.split("k400", "val")
    total = sum(index.files[s].size for s in split.shards)
    ff = find_ffmpeg()
    log = work / "commands.log"
    log.unlink(missing_ok=True)
    with MirrorProcess(index.root, total_bps=args.cap_mbps * MB) as server:
        urls = work / "k400_val_path.txt"
        write_urls(urls, index, split, server.url)
        todo = methods(server.url, urls, args, ff.path)
        if args.only:
            keep = tuple(p.strip() for p in args.only.split(","))
            todo = [m for m in todo if m.name.startswith(keep)]
        src = work / "src"  # the downloaded root `transcode only` reads (made once, untimed)
        if not (src / ".kinetix").exists():
            env = {**os.environ, "KINETIX_CACHE": str(work / "cache-src")}
            fetch = [*kinetix(), "download", "k400", "--split", "val", "--root", str(src)]
            fetch += ["--mirror", server.url, "--no-progress"]
            run_measured(fetch, log, env=env)
        print(
            f"mirror: {len(split.shards)} shards, {len(split.present)} clips, "
            f"{total / MB:.1f} MB ({VIDEO.width}x{VIDEO.height} scene, x264 medium crf 23, "
            f"GOP 250, AAC); link cap {args.cap_mbps:g} MB/s (download floor "
            f"{total / (args.cap_mbps * MB):.1f} s); ffmpeg {ff.version} ({ff.origin}); "
            f"{os.cpu_count()} cores; load {loadavg()}"
        )
        for m in todo:
            print(f"  {m.name}: {' '.join(m.argv(Path('RUN'), Path('SRC')))[-400:]}")
        for r in range(args.rounds):
            for m in todo[r % len(todo) :] + todo[: r % len(todo)]:
                run = work / "run"
                shutil.rmtree(run, ignore_errors=True)
                run.mkdir()
                env = {**os.environ, "KINETIX_CACHE": str(run / "cache")}
                os.sync()
                before = loadavg()
                got = run_measured(m.argv(run, src), log, env=env, server=server)
                m.runs.append(got)
                m.outputs.append(outputs(run))
                print(
                    f"  round {r + 1}: {m.name:56s} {got.wall:6.1f} s  cpu {got.cpu:6.1f} s  "
                    f"outputs {m.outputs[-1]}  (bg cores {got.bg_cores:.1f}, "
                    f"load {before} -> {loadavg()})",
                    flush=True,
                )
                shutil.rmtree(run, ignore_errors=True)
                time.sleep(1)
    print(f"\n{args.rounds} rounds: median (min-max); cpu = user+sys of the process tree")
    for m in todo:
        walls = [x.wall for x in m.runs]
        cpus = [x.cpu for x in m.runs]
        served = [x.server_cpu for x in m.runs]
        bg = [x.bg_cores for x in m.runs]
        print(
            f"  {m.name:56s} wall {spread(walls)} s  cpu {spread(cpus)} s  server cpu "
            f"{statistics.median(served):4.1f} s  bg cores {statistics.median(bg):.1f}  "
            f"outputs {sorted(set(m.outputs))}"
        )
    by = {m.name.split(":")[0].split(" (")[0]: m for m in todo}
    med = {k: statistics.median(x.wall for x in m.runs) for k, m in by.items()}
    cpu = {k: statistics.median(x.cpu for x in m.runs) for k, m in by.items()}
    plain = "download, no inline verify"
    if "download" in med and plain in med:
        share = med["download"] / med[plain] - 1
        print(
            f"  inline verification: {share:+.1%} of the download's wall "
            f"(target <= {TARGET_VERIFY:.0%}), +{cpu['download'] - cpu[plain]:.1f} CPU-s"
        )
    if {"download", "transcode only", "fused"} <= set(med):
        floor = max(med["download"], med["transcode only"])
        print(
            f"  fused / max(download, transcode only) = {med['fused'] / floor:.2f} "
            f"(target <= {TARGET_FUSED})"
        )
        for peer in ("chain", "seed"):
            if peer in med:
                print(f"  {peer} / fused = {med[peer] / med['fused']:.2f} wall, "
                      f"{cpu[peer] / cpu['fused']:.2f} cpu")  # fmt: skip


if __name__ == "__main__":
    main()
