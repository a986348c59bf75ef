"""Cost of the verbs as the root grows: `status`, `export`, `KineticsDataset`, a no-op `download`.

Builds synthetic roots of each size with ``scale_root.build_root`` (rows present and verified,
one empty file per clip), then runs each command as its own process, ``--rounds`` times
interleaved across sizes (csv and parquet each into an emptied --out, then again into the
same --out with nothing written to the manifest between: a "rerun", which leaves the table as
it is, export/kept.py), and prints per command and
size the median wall time (with the spread), the median CPU seconds of the child, its peak
RSS, and the log-log growth exponent of the median wall time over the sizes (1.0 = linear
in clips). The no-op ``download`` rerun is also run once per size under ``strace -f -c``
(when installed) to count its stat-family and directory-listing syscalls, and
``KineticsDataset`` is iterated by a DataLoader with 4 workers to report each worker's PSS
(``psutil``), i.e. whether workers copy the index.

    python benchmarks/bench_scale.py --sizes 10000,100000,650000 --rounds 3 --work /tmp/kx-scale
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_root import build_root

_DATASET = (
    "import sys; from kinetix.data import KineticsDataset; "
    "ds = KineticsDataset(sys.argv[1], 'train', frames_per_clip=16); print(len(ds))"
)


_WORKERS = r"""
import sys, psutil, torch
from torch.utils.data import DataLoader
from kinetix.data import KineticsDataset
class Keys(torch.utils.data.Dataset):
    def __init__(self, ds): self.ds = ds
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return self.ds.clip(i).label  # reads the index, decodes nothing
ds = KineticsDataset(sys.argv[1], "train", frames_per_clip=16)
loader = DataLoader(Keys(ds), batch_size=256, num_workers=4, persistent_workers=True,
                    sampler=torch.utils.data.RandomSampler(ds, num_samples=40000))
for _ in loader:
    pass
me = psutil.Process()
kids = me.children()
pss = [p.memory_full_info().pss / 2**20 for p in kids]
print(f"{me.memory_full_info().pss / 2**20:.0f} " + " ".join(f"{x:.0f}" for x in pss))
"""


def commands(root: Path, out: Path) -> dict[str, list[str]]:
    kinetix = [sys.executable, "-m", "kinetix.cli.main"]
    download = [*kinetix, "download", "k400", "--split", "train", "--root", str(root),
                "--annotations", f"{root}.csv", "--offline", "--layout", "underscore",
                "--no-progress"]  # fmt: skip
    tables = ["--out", f"{out}-table"]  # emptied before each "export csv|parquet" (FRESH)
    return {
        "download rerun": download,
        "status": [*kinetix, "status", str(root)],
        "export mmaction": [
            *kinetix,
            "export",
            str(root),
            "--format",
            "mmaction",
            "--out",
            str(out),
        ],
        **{
            f"export {fmt}": [*kinetix, "export", str(root), "--format", fmt, "--out", str(out)]
            for fmt in ("paddle", "slowfast")
        },
        # a table into an emptied --out (a first export, or as after any manifest write: the
        # round's download rerun writes one), then the same again with nothing written between
        **{
            f"export {fmt}{again}": [*kinetix, "export", str(root), "--format", fmt, *tables]
            for fmt in ("csv", "parquet")
            for again in ("", " rerun")
        },
        "KineticsDataset()": [sys.executable, "-c", _DATASET, str(root)],
    }


FRESH = ("export csv", "export parquet")  # run into an emptied --out


def fresh(name: str, argv: list[str]) -> list[str]:
    """``argv``, its --out emptied first when ``name`` is one of ``FRESH``."""
    if name in FRESH:
        shutil.rmtree(argv[argv.index("--out") + 1], ignore_errors=True)
    return argv


def run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def peak_rss(argv: list[str]) -> float:
    """Peak RSS (MB) of one run, from GNU time when it is there."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    if not os.path.exists(gnu_time):
        return float("nan")
    done = subprocess.run([gnu_time, "-f", "%M", *argv], check=True, capture_output=True, text=True)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def syscalls(argv: list[str]) -> str:
    """Stat-family and getdents64 calls of one run (strace -f -c), or '' without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return ""
    report = Path("/tmp") / f"kx-strace-{os.getpid()}.txt"
    subprocess.run([strace, "-f", "-c", "-o", str(report), *argv], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    calls: dict[str, int] = {}
    for line in report.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    report.unlink()
    stats = sum(n for name, n in calls.items() if "stat" in name and name != "statfs")
    return f"stat-family {stats}, getdents64 {calls.get('getdents64', 0)}"


def exponent(sizes: list[int], values: list[float]) -> float:
    """Slope of log(value) on log(size), least squares over every size (1.0 = linear)."""
    if len(sizes) < 2:
        return float("nan")
    xs, ys = [math.log(n) for n in sizes], [math.log(max(v, 1e-9)) for v in values]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,650000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kinetix-bench-scale"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    roots = {}
    for n in sizes:
        root = args.work / f"root{n}"
        if not (root / ".kinetix/manifest.sqlite").exists():
            started = time.perf_counter()
            build_root(root, n)
            print(f"built {n:,} clips in {time.perf_counter() - started:.1f} s", flush=True)
        roots[n] = root
    print(f"timed rounds start: {time.strftime('%H:%M:%S UTC', time.gmtime())}, {load()}")
    names = list(commands(roots[sizes[0]], args.work / "out"))
    walls: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for n in sizes:
            for name, argv in commands(roots[n], args.work / f"out{n}").items():
                wall, cpu = run(fresh(name, argv))
                walls.setdefault((name, n), []).append(wall)
                cpus.setdefault((name, n), []).append(cpu)
    print(f"timed rounds end: {time.strftime('%H:%M:%S UTC', time.gmtime())}, {load()}")
    print(
        "\nper size: CPU-s median (user+sys of the child; the primary figure on a shared "
        "machine), wall median ± half the range, peak RSS; exponents are log-log fits over "
        "the sizes"
    )
    print(f"{'command':<20}" + "".join(f"{n:>34,}" for n in sizes) + "  exp CPU (wall)")
    for name in names:
        cells, cpu_medians, wall_medians = [], [], []
        for n in sizes:
            w, c = walls[(name, n)], cpus[(name, n)]
            wall_medians.append(statistics.median(w))
            cpu_medians.append(statistics.median(c))
            rss = peak_rss(fresh(name, commands(roots[n], args.work / f"out{n}")[name]))
            spread = (max(w) - min(w)) / 2
            cells.append(
                f"cpu {cpu_medians[-1]:5.2f} wall {wall_medians[-1]:6.2f}±{spread:4.2f} "
                f"{rss:4.0f}MB"
            )
        print(
            f"{name:<20}" + "".join(f"{cell:>34}" for cell in cells)
            + f"  {exponent(sizes, cpu_medians):5.2f} ({exponent(sizes, wall_medians):.2f})"
        )  # fmt: skip
    print()
    for n in sizes:
        print(
            f"download rerun syscalls at {n:,}: "
            + syscalls(commands(roots[n], args.work)["download rerun"])
        )
    for n in sizes:
        done = subprocess.run([sys.executable, "-c", _WORKERS, str(roots[n])], check=True,
                              capture_output=True, text=True)  # fmt: skip
        parent, *workers = done.stdout.split()
        print(
            f"DataLoader 4 workers at {n:,}: parent PSS {parent} MB, "
            f"workers PSS {', '.join(workers)} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
