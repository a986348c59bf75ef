"""CPU time, wall time and peak RSS of extract_stream against ``tar xzf`` and Python's tarfile.

The shards are CVDF-shaped K400 parts of a synthetic mirror (``kinetix.synthetic.mirror``) whose
clips are realistic noise-pattern H.264 (``--clip-mb`` each), gzip level 6 like ``tar czf``.
Each method unpacks every clip of every shard in a fresh interpreter, so its peak RSS is its
own; CPU time is user+sys of that process and its children (``tar`` and its ``gzip``).
kinetix also hashes (SHA-256) and fsyncs every clip, which the peers do not.

    python benchmarks/bench_extract.py [--shards 8] [--shard-mb 50] [--clip-mb 1.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("tar xzf", "kinetix extract_stream", "tarfile r:gz (zlib)", "tarfile r| + isal")

# Each child prints {"cpu", "wall", "rss_mb", "bytes"} for one method over every shard.
_CHILD = r"""
import json, resource, shutil, subprocess, sys, tarfile, time
from pathlib import Path
method, mirror_root, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
index = json.loads((mirror_root / "mirror.json").read_text())["splits"]["k400/val"]
shards = [mirror_root / s for s in index["shards"]]
if method == "kinetix extract_stream":
    from kinetix.transfer.extract import ExtractPlan, extract_stream
elif method == "tarfile r| + isal":
    from isal import igzip

def peak_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report
    # the benchmark parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

def tar_xzf(path, dest):
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "xzf", str(path), "-C", str(dest)], check=True)

def kinetix(path, dest):
    keys = [c["clip"] for c in index["clips"] if c["shard"] and mirror_root / c["shard"] == path]
    wanted = {f"{c['youtube_id']}_{c['time_start']:06d}_{c['time_end']:06d}": None for c in keys}
    wanted = {key: dest / "val" / f"{key}.mp4" for key in wanted}
    with path.open("rb") as f:
        extract_stream(f, ExtractPlan(dest, wanted), name=path.name)

def tarfile_gz(path, dest):
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(dest, filter="data")

def tarfile_isal(path, dest):
    dest.mkdir(parents=True, exist_ok=True)
    with igzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for info in tar:
            if info.isfile():
                with tar.extractfile(info) as src, (dest / Path(info.name).name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)

run = {"tar xzf": tar_xzf, "kinetix extract_stream": kinetix,
       "tarfile r:gz (zlib)": tarfile_gz, "tarfile r| + isal": tarfile_isal}[method]
base = peak_mb()
self0, kids0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
for i, shard in enumerate(shards):
    run(shard, out / str(i))
wall = time.perf_counter() - start
used = cpu(resource.RUSAGE_SELF) - self0 + cpu(resource.RUSAGE_CHILDREN) - kids0
# tar's own peak for tar xzf; the interpreter's, over its baseline after imports, otherwise
if method == "tar xzf":
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
else:
    rss = peak_mb()
written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
print(json.dumps({"cpu": used, "wall": wall, "rss_mb": rss, "base_mb": base, "bytes": written}))
"""


def build(root: Path, shards: int, shard_mb: float, clip_mb: float, size: str) -> None:
    from kinetix.synthetic.media import VideoSpec
    from kinetix.synthetic.mirror import MirrorSpec, build_mirror

    per_shard = max(1, round(shard_mb / clip_mb))
    width, height = (int(v) for v in size.split("x"))
    # 10 s clips; leave room for the 64 kb/s audio track
    kbps = max(100, int(clip_mb * 8e3 / 10 - 64))
    spec = MirrorSpec(
        releases={"k400": ("val",)},
        classes=shards,  # as many clips as one part holds per class: exactly ``shards`` parts
        clips_per_class=per_shard,
        shard_size=per_shard,
        plain_tar_shard=False,
        appledouble=False,
        corrupted=0,
        missing=0,
        video=VideoSpec(fps=25, width=width, height=height, pattern="noise", bitrate=f"{kbps}k"),
    )
    build_mirror(root, spec)


def measure(method: str, mirror_root: Path, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, method, str(mirror_root), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr}")
    shutil.rmtree(out, ignore_errors=True)
    return dict(json.loads(proc.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--shard-mb", type=float, default=50.0)
    parser.add_argument("--clip-mb", type=float, default=1.5)
    parser.add_argument("--size", default="340x256", help="clip WxH")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per method")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        mirror_root = work / "mirror"
        print(f"building {args.shards} shards of ~{args.shard_mb:g} MB ...", flush=True)
        build(mirror_root, args.shards, args.shard_mb, args.clip_mb, args.size)
        from kinetix.synthetic.mirror import MirrorIndex

        index = MirrorIndex.load(mirror_root)
        split = index.split("k400", "val")
        sizes = [index.files[s].size for s in split.shards]
        clip_sizes = [c.size or 0 for c in split.present]
        for shard in split.shards:  # into the page cache, so no method pays the first read
            (mirror_root / shard).read_bytes()
        total = sum(sizes)
        print(
            f"{len(sizes)} shards, {total / 1e6:.0f} MB gzip (level 6), {len(clip_sizes)} clips "
            f"of {sum(clip_sizes) / len(clip_sizes) / 1e6:.2f} MB on average"
        )
        results: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for method in METHODS:
                got = measure(method, mirror_root, work / "out")
                best = results.get(method)
                if best is None or got["cpu"] < best["cpu"]:
                    results[method] = got
        tar = results["tar xzf"]
        print(f"\nbest of {args.repeat}; ratios are method / tar xzf (lower is better)")
        print(f"{'method':26s} {'cpu s':>7s} {'wall s':>7s} {'cpu x':>6s} {'wall x':>6s} "
              f"{'MB/s':>6s} {'peak RSS (over interpreter)':>28s}")  # fmt: skip
        for method in METHODS:
            r = results[method]
            print(
                f"{method:26s} {r['cpu']:7.2f} {r['wall']:7.2f} {r['cpu'] / tar['cpu']:6.2f} "
                f"{r['wall'] / tar['wall']:6.2f} {total / 1e6 / r['wall']:6.0f} "
                f"{r['rss_mb']:9.0f} MB"
                + ("" if method == "tar xzf" else f" (+{r['rss_mb'] - r['base_mb']:.0f} MB)")
            )
        ours = results["kinetix extract_stream"]
        print(
            f"\nextract_stream vs tar xzf: CPU {ours['cpu'] / tar['cpu']:.2f}x, wall "
            f"{ours['wall'] / tar['wall']:.2f}x; vs tarfile r:gz: CPU "
            f"{ours['cpu'] / results['tarfile r:gz (zlib)']['cpu']:.2f}x "
            "(kinetix also SHA-256s and fsyncs every clip)"
        )


if __name__ == "__main__":
    main()
