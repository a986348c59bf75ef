"""kinetix download end to end vs axel, wget and aria2c + tar xzf on a capped synthetic CVDF mirror.

    python benchmarks/bench_download.py [--shards 8] [--shard-mb 50] [--repeat 3] [--quick]

Builds (once; cached under ``--workdir``) a K400-val-shaped mirror: class-mixed
``400/val/part_N.tar.gz`` shards (gzip level 6, like ``tar czf``) of realistic noise-pattern
H.264 clips, and serves it from a separate process with a link cap and a per-connection cap (a
CDN where one connection cannot fill the link). Then, each method in its own process and into an
empty folder, in interleaved rounds:

1. ``kinetix download k400 --split val --mirror URL``: download + extract + place, end to end
   (then run again, which must do nothing);
2. kinetix ``ShardDownload`` alone, same connections and shards at a time, no extraction;
3. the all-in-one fork of the CVDF scripts: ``axel -n 8`` per shard, 4 shards at a time
   (``xargs -P 4``), then ``tar xzf`` each shard, one after the other;
4. the CVDF scripts: ``wget -c -i path_list`` (shards one after the other), then ``tar xzf``;
5. ``aria2c -x16 -j4 -i path_list``, then ``tar xzf``.

A method counts only if it produced every clip (names and sizes checked against the mirror
index). Also measured: peak RSS of the kinetix process (again at a larger shard size, ``--large``)
and the CPU time of kinetix's gunzip+untar (``extract_stream`` over the local shards; it also
SHA-256s and fsyncs every clip) against ``tar xzf``'s user+sys. The machine may be shared: each
run reports how many cores other processes kept busy meanwhile ("bg cores").
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from _mirror_process import MirrorProcess

from kinetix.synthetic.media import VideoSpec, make_video
from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, MirrorSplit, build_mirror_into

MB = 1_000_000
GNU_TIME = "/usr/bin/time"
CLIPS_PER_CLASS = 8
# Targets from the CVDF download engine issue (performance section).
TARGET_RATE = 0.9  # kinetix end to end, of the link cap
TARGET_VS_AXEL = 0.5  # kinetix end to end / (axel + tar xzf)
TARGET_VS_FETCH = 1.15  # kinetix end to end / kinetix download only
TARGET_RSS_MB = 300.0
TARGET_CPU = 1.0  # kinetix gunzip+untar CPU / tar xzf CPU
UNTAR = 'for f in targz/*.tar.gz; do tar xzf "$f" -C val; done'  # the CVDF extractor's loop

# kinetix's transfer engine and nothing else: the network-bound floor for the end-to-end run.
_FETCH_ONLY = """
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from kinetix.config import TransferConfig
from kinetix.transfer.shard import ShardDownload
dest, connections, parallel = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = TransferConfig(connections=connections)

def fetch(url):
    with ShardDownload(url, dest / url.rsplit("/", 1)[-1], config) as download:
        download.finish()

with ThreadPoolExecutor(parallel) as pool:
    list(pool.map(fetch, sys.argv[4:]))
"""

# extract_stream over the local shards; prints the CPU and wall time of the extraction alone.
_EXTRACT = """
import json, resource, sys, time
from pathlib import Path
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.transfer.extract import ExtractPlan, extract_stream
mirror, out = Path(sys.argv[1]), Path(sys.argv[2])
split = MirrorIndex.load(mirror).split("k400", "val")

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

cpu0, wall0 = cpu(), time.perf_counter()
for shard in split.shards:
    wanted = {c.key: out / "val" / f"{c.key}.mp4" for c in split.present if c.shard == shard}
    with (mirror / shard).open("rb") as f:
        extract_stream(f, ExtractPlan(out, wanted), name=shard)
print(json.dumps({"cpu": cpu() - cpu0, "wall": time.perf_counter() - wall0}))
"""


# --- the mirror -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorShape:
    shards: int
    shard_mb: float
    bitrate: str
    width: int
    height: int
    duration: float

    @property
    def video(self) -> VideoSpec:
        return VideoSpec(
            duration=self.duration,
            fps=25,
            width=self.width,
            height=self.height,
            pattern="noise",
            bitrate=self.bitrate,
        )

    def key(self, *extra: object) -> str:
        fields = [self.bitrate, self.width, self.height, self.duration, *extra]
        return hashlib.sha1(json.dumps(fields).encode()).hexdigest()[:10]


def gzipped_clip_size(shape: MirrorShape, workdir: Path) -> int:
    """Bytes one clip of this shape adds to a shard (encoded once, remembered under workdir)."""
    probe = workdir / f"probe-{shape.key()}.mp4"
    if not probe.exists():
        make_video(probe, shape.video)
    return len(gzip.compress(probe.read_bytes(), compresslevel=6)) + 512  # + its tar header


def mirror_for(shape: MirrorShape, workdir: Path) -> MirrorIndex:
    """The cached mirror of this shape, built first if needed (under a temp name, then renamed)."""
    per_shard = math.ceil(shape.shard_mb * MB / gzipped_clip_size(shape, workdir))
    # Whole classes of CLIPS_PER_CLASS clips must fill the shards exactly, or a short extra
    # part appears: round the clips per shard up (shards only grow).
    step = CLIPS_PER_CLASS // math.gcd(CLIPS_PER_CLASS, shape.shards)
    per_shard = math.ceil(per_shard / step) * step
    root = workdir / f"mirror-{shape.shards}x{shape.shard_mb:g}MB-{shape.key(per_shard)}"
    if (root / "mirror.json").exists():
        return MirrorIndex.load(root)
    spec = MirrorSpec(
        releases={"k400": ("val",)},
        classes=shape.shards * per_shard // CLIPS_PER_CLASS,
        clips_per_class=CLIPS_PER_CLASS,
        shard_size=per_shard,
        plain_tar_shard=False,
        appledouble=False,
        corrupted=0,
        missing=0,
        video=shape.video,
        clip_duration=shape.duration,
    )
    print(f"building {shape.shards} shards of {per_shard} clips under {root} ...", flush=True)
    started = time.perf_counter()
    index = build_mirror_into(root, spec)
    print(f"built in {time.perf_counter() - started:.0f}s", flush=True)
    return index


def warm(index: MirrorIndex, split: MirrorSplit) -> None:
    """Read the shards once so that no method pays the first read from disk."""
    for shard in split.shards:
        with (index.root / shard).open("rb") as f:
            while f.read(8 << 20):
                pass


def describe(index: MirrorIndex, split: MirrorSplit) -> tuple[int, str]:
    shard_bytes = [index.files[s].size for s in split.shards]
    clips = [c.size or 0 for c in split.present]
    total = sum(shard_bytes)
    text = (
        f"{len(shard_bytes)} shards x {total / len(shard_bytes) / MB:.1f} MB "
        f"(smallest {min(shard_bytes) / MB:.1f} MB, {total / MB:.0f} MB in all), "
        f"{len(clips)} clips of {sum(clips) / len(clips) / MB:.2f} MB"
    )
    return total, text


def write_urls(path: Path, index: MirrorIndex, split: MirrorSplit, base: str) -> list[str]:
    """The split's path list with the CVDF base swapped for the local mirror (what ``sed`` does)."""
    urls = [index.url(base, s) for s in split.shards]
    path.write_text("".join(u + "\n" for u in urls))
    return urls


# --- measuring ------------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


@dataclass(frozen=True)
class Measured:
    """One child process: wall time, user+sys of it and its children, their peak RSS, and the
    CPU the mirror server and every other process of the machine used meanwhile."""

    wall: float
    cpu: float
    rss_mb: float
    server_cpu: float = 0.0
    others_cpu: float = 0.0

    def __add__(self, other: Measured) -> Measured:
        return Measured(
            self.wall + other.wall,
            self.cpu + other.cpu,
            max(self.rss_mb, other.rss_mb),
            self.server_cpu + other.server_cpu,
            self.others_cpu + other.others_cpu,
        )

    @property
    def bg_cores(self) -> float:
        return self.others_cpu / self.wall if self.wall else 0.0


def run_measured(
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    server: MirrorProcess | None = None,
) -> Measured:
    """Run ``argv`` to completion under GNU time: user+sys and peak RSS of it and its children.

    GNU time rather than wait4 from here: a child forked from this interpreter would carry this
    process's RSS into its own maximum.
    """
    usage = log.with_name(log.name + ".time")
    me = psutil.Process()
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        timed = [GNU_TIME, "-f", "%U %S %M", "-o", str(usage), "--", *argv]
        server0 = server.cpu_seconds() if server else 0.0
        busy0, me0 = busy_cpu_seconds(), sum(me.cpu_times()[:2])
        started = time.perf_counter()
        code = subprocess.run(timed, cwd=cwd, env=env, stdout=out, stderr=out).returncode
        wall = time.perf_counter() - started
        busy, mine = busy_cpu_seconds() - busy0, sum(me.cpu_times()[:2]) - me0
        served = server.cpu_seconds() - server0 if server else 0.0
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{shlex.join(argv)} exited with {code}:\n{tail}")
    user, system, rss_kb = usage.read_text().split()[-3:]
    cpu = float(user) + float(system)
    return Measured(wall, cpu, int(rss_kb) / 1024, served, max(0.0, busy - cpu - served - mine))


def shell(script: str) -> list[str]:
    return ["bash", "-c", script]


@dataclass(frozen=True)
class Output:
    """What a method left behind, checked against the mirror index."""

    count: int
    expected: int
    complete: bool
    what: str = "clips"


def check_clips(folder: Path, split: MirrorSplit) -> Output:
    expected = {c.key: c.size for c in split.present}
    found = {
        p.stem: p.stat().st_size
        for p in folder.rglob("*.mp4")
        if not p.name.startswith(".") and p.is_file()
    }
    return Output(len(found), len(expected), found == expected)


def check_shards(folder: Path, index: MirrorIndex, split: MirrorSplit) -> Output:
    want = {Path(s).name: index.files[s].size for s in split.shards}
    found = {p.name: p.stat().st_size for p in folder.iterdir() if p.name in want}
    return Output(len(found), len(want), found == want, "shards")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*.mp4")}


@dataclass(frozen=True)
class Run:
    fetch: Measured
    untar: Measured | None
    output: Output
    rerun: Measured | None = None  # kinetix again on the finished root: must do nothing

    @property
    def total(self) -> Measured:
        return self.fetch + self.untar if self.untar else self.fetch

    @property
    def wall(self) -> float:
        return self.total.wall


@dataclass
class Method:
    """One way of getting the split onto disk: a fetch phase and, for the peers, ``tar xzf``."""

    key: str  # kinetix, kinetix-fetch, or the peer's tool
    name: str
    fetch: Callable[[Path], list[str]]  # run folder -> argv
    untar: bool = True  # then ``tar xzf`` every shard the fetch left in RUN/targz
    shown: str = ""  # how to print the command when its argv is not readable
    runs: list[Run] = field(default_factory=list)

    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.wall)

    def command(self) -> str:
        argv = self.fetch(Path("RUN"))
        line = self.shown or (argv[2] if argv[:2] == ["bash", "-c"] else shlex.join(argv))
        return line + (f"\n    {UNTAR}" if self.untar else "")


def run_method(
    method: Method,
    run: Path,
    index: MirrorIndex,
    split: MirrorSplit,
    server: MirrorProcess,
    log: Path,
) -> Run:
    shutil.rmtree(run, ignore_errors=True)
    (run / "targz").mkdir(parents=True)
    (run / "val").mkdir()
    env = {**os.environ, "KINETIX_CACHE": str(run / "cache")}  # no annotation cache carried over
    os.sync()  # the previous run's write-back must not land inside this one
    argv = method.fetch(run)
    fetched = run_measured(argv, log, cwd=run, env=env, server=server)
    untarred = rerun = None
    if method.untar:
        untarred = run_measured(shell(UNTAR), log, cwd=run, env=env, server=server)
    if method.key == "kinetix-fetch":
        output = check_shards(run / "targz", index, split)
    elif method.key == "kinetix":
        output = check_clips(run / "root", split)
        before = snapshot(run / "root")
        rerun = run_measured(argv, log, cwd=run, env=env, server=server)
        if snapshot(run / "root") != before:
            raise SystemExit("a kinetix rerun on a finished root changed its clips")
    else:
        output = check_clips(run / "val", split)
    shutil.rmtree(run, ignore_errors=True)
    os.sync()
    return Run(fetched, untarred, output, rerun)


def kinetix_argv(base: str, root: Path, connections: int, parallel: int) -> list[str]:
    exe = Path(sys.executable).with_name("kinetix")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "kinetix.cli.main"]
    return [
        *command, "download", "k400", "--split", "val", "--root", str(root), "--mirror", base,
        "--connections", str(connections), "--parallel", str(parallel), "--no-progress",
    ]  # fmt: skip


def make_methods(
    base: str, urls: Path, shard_urls: list[str], connections: int, parallel: int
) -> list[Method]:
    methods = [
        Method(
            "kinetix",
            "kinetix download (end to end)",
            lambda run: kinetix_argv(base, run / "root", connections, parallel),
            untar=False,
        ),
        Method(
            "kinetix-fetch",
            f"kinetix ShardDownload only (x{connections}, {parallel} at once)",
            lambda run: [
                sys.executable,
                "-c",
                _FETCH_ONLY,
                str(run / "targz"),
                *map(str, (connections, parallel, *shard_urls)),
            ],
            untar=False,
            shown=f"python -c 'with ShardDownload(url, part, TransferConfig(connections="
            f"{connections})): finish()' in {parallel} threads, into RUN/targz",
        ),
    ]
    peers = [
        (
            "axel",
            f"axel -n {connections} x{parallel} (xargs -P) + tar xzf",
            f"cd targz && xargs -P {parallel} -n 1 axel -q -n {connections} < {urls}",
        ),
        ("wget", "wget -c -i (one by one) + tar xzf", f"wget -q -c -i {urls} -P targz"),
        ("aria2c", "aria2c -x16 -j4 + tar xzf", f"aria2c -q -x16 -j4 -i {urls} -d targz"),
    ]
    for tool, name, script in peers:
        if shutil.which(tool) is None:
            print(f"{tool} not found: skipping '{name}' (apt-get install -y {tool})")
            continue
        methods.append(Method(tool, name, lambda run, script=script: shell(script)))
    return methods


def loadavg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def check(label: str, value: float, target: float, *, higher: bool = False) -> bool:
    met = value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    print(f"  {label:46s} {value:7.2f}  (target {sign} {target:g})  {'met' if met else 'MISSED'}")
    return met


# --- the three comparisons ------------------------------------------------------------------


def compare_downloads(args: argparse.Namespace, index: MirrorIndex, work: Path) -> None:
    split = index.split("k400", "val")
    total, text = describe(index, split)
    cap = args.total_mbps * MB
    warm(index, split)
    log = work / "commands.log"
    log.unlink(missing_ok=True)
    per_connection = args.per_connection_mbps * MB
    with MirrorProcess(index.root, per_connection_bps=per_connection, total_bps=cap) as server:
        urls = work / "k400_val_path.txt"
        shard_urls = write_urls(urls, index, split, server.url)
        methods = make_methods(server.url, urls, shard_urls, args.connections, args.parallel)
        print(f"mirror: {text}")
        print(
            f"server: its own process at {server.url}, link cap {args.total_mbps:g} MB/s, "
            f"{args.per_connection_mbps:g} MB/s per connection"
        )
        print(f"{args.repeat} round(s), method order rotated each round; commands in {log}")
        print("methods (RUN = a new empty folder per run):")
        for m in methods:
            print(f"  {m.name}:\n    {m.command()}")
        for r in range(args.repeat):
            for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
                m.runs.append(run_method(m, work / "run", index, split, server, log))
                last = m.runs[-1].total
                print(
                    f"  round {r + 1}: {m.name:46s} {last.wall:6.1f}s  "
                    f"(bg cores {last.bg_cores:.1f}, load {loadavg()})",
                    flush=True,
                )
    report_downloads(methods, total, cap)


def report_downloads(methods: list[Method], total: int, cap: float) -> None:
    by_key = {m.key: m for m in methods}
    ours, fetch_only = by_key["kinetix"].best(), by_key["kinetix-fetch"].best()
    print(
        "\nfastest run of each method (wall = fetch + untar); bg = cores other processes kept "
        "busy meanwhile;\nratio = kinetix end to end / method"
    )
    print(f"{'method':46s} {'wall s':>6s} {'fetch s':>7s} {'untar s':>7s} {'MB/s':>5s} "
          f"{'output':>11s} {'cpu s':>5s} {'RSS MB':>6s} {'srv cpu':>7s} {'bg':>4s} "
          f"{'ratio':>5s}")  # fmt: skip
    for m in methods:
        run = m.best()
        both = run.total
        untar = f"{run.untar.wall:7.1f}" if run.untar else f"{'-':>7s}"
        out = run.output
        output = f"{out.count}/{out.expected} {out.what}" if out.complete else "INCOMPLETE"
        print(
            f"{m.name:46s} {both.wall:6.1f} {run.fetch.wall:7.1f} {untar} "
            f"{total / MB / both.wall:5.1f} {output:>11s} {both.cpu:5.1f} {both.rss_mb:6.0f} "
            f"{both.server_cpu:7.1f} {both.bg_cores:4.1f} {ours.wall / both.wall:5.2f}"
        )
        if len(m.runs) > 1:
            walls = ", ".join(f"{r.wall:.1f} (bg {r.total.bg_cores:.1f})" for r in m.runs)
            print(f"{'':46s} every run: {walls}")
    incomplete = [m.name for m in methods if not all(r.output.complete for r in m.runs)]
    if incomplete:
        print(f"INCOMPLETE in some run (not a fair comparison): {', '.join(incomplete)}")
    reruns = [r.rerun.wall for r in by_key["kinetix"].runs if r.rerun]
    print(
        f"\nkinetix rerun on the finished root (start-up, catalog, manifest; nothing fetched): "
        f"median {statistics.median(reruns):.2f}s"
    )
    print(
        f"kinetix end to end CPU {ours.fetch.cpu:.1f}s vs download only {fetch_only.fetch.cpu:.1f}s"
        f" (extraction, hashing, manifest: {ours.fetch.cpu - fetch_only.fetch.cpu:.1f}s)"
    )
    print("\ntargets")
    check("kinetix end to end rate / link cap", total / ours.wall / cap, TARGET_RATE, higher=True)
    if "axel" in by_key:
        axel = by_key["axel"].best()
        check("kinetix end to end / (axel + tar xzf)", ours.wall / axel.wall, TARGET_VS_AXEL)
        floor = total / cap
        print(
            f"  (the link alone takes {floor:.2f}s: even a zero-overhead downloader that extracts "
            f"for free is {floor / axel.wall:.2f} x axel + tar xzf here)"
        )
    vs_fetch = ours.wall / fetch_only.wall
    check("kinetix end to end / kinetix download only", vs_fetch, TARGET_VS_FETCH)
    check("peak RSS of kinetix download, MB", ours.fetch.rss_mb, TARGET_RSS_MB)


def compare_extraction(index: MirrorIndex, work: Path, repeat: int) -> None:
    """kinetix extract_stream CPU vs ``tar xzf`` user+sys, same local shards, best of N."""
    split = index.split("k400", "val")
    log = work / "extract.log"
    out = work / "extract"
    shards = " ".join(shlex.quote(str(index.root / s)) for s in split.shards)
    tar_script = f'for f in {shards}; do tar xzf "$f" -C {shlex.quote(str(out))}; done'
    best: dict[str, Measured] = {}
    for _ in range(repeat):
        for name in ("tar xzf", "kinetix extract_stream"):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            os.sync()
            if name == "tar xzf":
                got = run_measured(shell(tar_script), log)
            else:
                argv = [sys.executable, "-c", _EXTRACT, str(index.root), str(out)]
                child = run_measured(argv, log)
                # the extraction alone, without interpreter start-up and imports
                inner = json.loads(log.read_text().splitlines()[-1])
                got = Measured(inner["wall"], inner["cpu"], child.rss_mb, 0.0, child.others_cpu)
            if not check_clips(out, split).complete:
                raise SystemExit(f"{name} did not extract every clip")
            if name not in best or got.cpu < best[name].cpu:
                best[name] = got
    shutil.rmtree(out, ignore_errors=True)
    print(f"\ngunzip + untar of the same local shards, best of {repeat} (CPU = user+sys)")
    for name, m in best.items():
        print(
            f"  {name:24s} cpu {m.cpu:6.2f}s  wall {m.wall:6.2f}s  peak RSS {m.rss_mb:4.0f} MB  "
            f"bg cores {m.bg_cores:.1f}"
        )
    ratio = best["kinetix extract_stream"].cpu / best["tar xzf"].cpu
    check("kinetix extract CPU / tar xzf CPU", ratio, TARGET_CPU)


def compare_large(args: argparse.Namespace, index: MirrorIndex, work: Path) -> None:
    """Peak RSS (and overlap) of kinetix with bigger shards: memory must not follow shard size."""
    split = index.split("k400", "val")
    total, text = describe(index, split)
    cap = args.total_mbps * MB
    warm(index, split)
    log = work / "large.log"
    per_connection = args.per_connection_mbps * MB
    with MirrorProcess(index.root, per_connection_bps=per_connection, total_bps=cap) as server:
        urls = work / "k400_val_path_large.txt"
        shard_urls = write_urls(urls, index, split, server.url)
        ours, fetch_only = make_methods(
            server.url, urls, shard_urls, args.connections, args.parallel
        )[:2]
        e2e = run_method(ours, work / "run", index, split, server, log)
        fetch = run_method(fetch_only, work / "run", index, split, server, log)
    print(f"\nlarger shards: {text}")
    out = e2e.output
    print(
        f"  kinetix end to end {e2e.wall:.1f}s ({total / e2e.wall / cap:.2f} of link cap, bg "
        f"cores {e2e.total.bg_cores:.1f}), download only {fetch.wall:.1f}s (bg cores "
        f"{fetch.total.bg_cores:.1f}), {out.count}/{out.expected} clips"
        + ("" if out.complete else " INCOMPLETE")
    )
    check("kinetix end to end / download only (large)", e2e.wall / fetch.wall, TARGET_VS_FETCH)
    check("peak RSS of kinetix download, MB (large)", e2e.fetch.rss_mb, TARGET_RSS_MB)


def parse_shape(text: str) -> tuple[int, float]:
    shards, _, size = text.lower().partition("x")
    try:
        return int(shards), float(size)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SHARDSxMB like 4x200, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--shard-mb", type=float, default=50.0, help="at least this per shard")
    parser.add_argument("--bitrate", default="1.2M", help="video bitrate of a clip (x264)")
    parser.add_argument("--size", default="340x256", help="clip WxH")
    parser.add_argument("--duration", type=float, default=10.0, help="clip seconds")
    parser.add_argument("--total-mbps", type=float, default=60.0, help="link cap, MB/s")
    parser.add_argument("--per-connection-mbps", type=float, default=7.5, help="MB/s")
    parser.add_argument("--connections", type=int, default=8, help="per shard (kinetix, axel)")
    parser.add_argument("--parallel", type=int, default=4, help="shards at once (kinetix, axel)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; best is shown")
    parser.add_argument(
        "--large",
        type=parse_shape,
        default=(4, 200.0),
        metavar="NxMB",
        help="also run kinetix on N shards of MB each, for peak RSS (default 4x200)",
    )
    parser.add_argument("--no-large", action="store_true", help="skip the larger-shard run")
    parser.add_argument(
        "--quick", action="store_true", help="4 shards of 10 MB, 1 round, no larger-shard run"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "kinetix-bench-download",
        help="mirrors are cached here between runs",
    )
    args = parser.parse_args()
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} (GNU time) measures CPU and peak RSS: apt-get install time")
    if args.quick:
        args.shards, args.shard_mb, args.repeat, args.no_large = 4, 10.0, 1, True
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)

    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average {loadavg()}")
    if args.quick:
        print("--quick: a smoke test; fixed costs dominate so small a run, the targets are for "
              "the default sizes")  # fmt: skip
    shape = MirrorShape(args.shards, args.shard_mb, args.bitrate, width, height, args.duration)
    index = mirror_for(shape, work)
    large = None
    if not args.no_large:
        shards, shard_mb = args.large
        large_shape = MirrorShape(shards, shard_mb, args.bitrate, width, height, args.duration)
        large = mirror_for(large_shape, work)
    compare_downloads(args, index, work)
    compare_extraction(index, work, max(args.repeat, 1))
    if large is not None:
        compare_large(args, large, work)


if __name__ == "__main__":
    main()
