"""Time from `kinetix download` to its first shard request on a fresh K700-2020 train root.

The annotation file has N rows made from the real K700-2020 val rows (700 classes; the train
CSV itself is not in the shared metadata), shifted so each key is unique, as scale_root does.
The path list is the real ``k700_2020_train_path.txt`` (700 class shards), cached under the
root so no network is needed. The shard HEAD probes are answered 1 byte (no server). Two
times: the **first byte**, when the first ``--parallel`` shards' transfers start ahead of the
plan (``transfer/prefetch.py``; the start itself is stubbed, nothing is fetched), and the
**first shard task**, where the run stops: catalog read, manifest registration, vanished check
and shard planning.

    python benchmarks/bench_plan.py --sizes 54500,136000,545000 --rounds 3 --work /tmp/kx-plan
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import exponent, load
from scale_root import shared_data, write_annotations

_CHILD = r"""
import contextlib, json, resource, sys, time
from pathlib import Path
import kinetix.download as d
import kinetix.sources.cvdf_source as cvdf  # where the shard tasks start (the first byte)
from kinetix.config import DownloadConfig
from kinetix.store.layout import LabelStyle
from kinetix.transfer.http import RemoteInfo
root, csv = Path(sys.argv[1]), Path(sys.argv[2])
class FirstByte(Exception):
    pass
def first_task(config, manifest, tasks, *args, **kwargs):
    raise FirstByte(len(tasks), sum(len(t.wanted) for t in tasks))
marks = {}
def head_start(shards, config):  # where the first shards' transfers would start
    marks["first_byte"] = (time.perf_counter() - started, time.process_time() - cpu)
    return contextlib.nullcontext(len(list(shards)))
cvdf.run_shard_tasks = first_task
cvdf._size_or_zero = lambda url, config: 1  # every shard "fits"; no server is asked
cvdf._probe_or_none = lambda url, config: RemoteInfo(url, 1, None, True, None)
cvdf.prefetch.head_start = head_start
started, cpu = time.perf_counter(), time.process_time()
try:
    d.download(DownloadConfig(root=root, release="k700-2020", split="train", annotations=csv,
                              offline=True, progress=False, layout=LabelStyle.UNDERSCORE))
    raise SystemExit("no shard task was planned")
except FirstByte as stop:
    tasks, clips = stop.args
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
first_wall, first_cpu = marks.get("first_byte", (wall, cpu))
print(json.dumps({"wall": wall, "cpu": cpu, "rss": rss, "tasks": tasks, "clips": clips,
                  "first_wall": first_wall, "first_cpu": first_cpu}))
"""


def fresh_root(work: Path, n: int) -> tuple[Path, Path]:
    csv = work / f"k700_train_{n}.csv"
    if not csv.exists():
        write_annotations(csv, n, "k700-2020", "train")
    root = work / f"root{n}"
    shutil.rmtree(root, ignore_errors=True)
    lists = root / ".kinetix" / "lists" / "700_2020" / "train"
    lists.mkdir(parents=True)
    shutil.copy(
        shared_data() / "k700_2020/k700_2020_train_path.txt", lists / "k700_2020_train_path.txt"
    )
    return root, csv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="54500,136000,545000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kinetix-bench-plan"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    started = time.strftime("%H:%M:%S UTC", time.gmtime())
    print(f"start {started}; {load()}", flush=True)
    for _ in range(args.rounds):
        for n in sizes:
            root, csv = fresh_root(args.work, n)
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(root), str(csv)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            results[n].append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"{'rows':>8} {'first byte':>10} {'±':>5} {'cpu':>5} {'wall med':>9} {'±':>5} "
        f"{'cpu med':>8} {'rss MB':>7} {'tasks':>6} {'clips':>7}"
    )
    medians = []
    for n in sizes:
        r = results[n]
        walls = [x["wall"] for x in r]
        firsts = [x["first_wall"] for x in r]
        medians.append(statistics.median(walls))
        print(
            f"{n:>8} {statistics.median(firsts):>10.2f} {(max(firsts) - min(firsts)) / 2:>5.2f} "
            f"{statistics.median(x['first_cpu'] for x in r):>5.2f} "
            f"{medians[-1]:>9.2f} {(max(walls) - min(walls)) / 2:>5.2f} "
            f"{statistics.median(x['cpu'] for x in r):>8.2f} {max(x['rss'] for x in r):>7.0f} "
            f"{r[0]['tasks']:>6} {r[0]['clips']:>7}"
        )
    if len(sizes) > 1:
        cpus = [statistics.median(x["cpu"] for x in results[n]) for n in sizes]
        print(
            f"growth exponent (log-log fit): CPU {exponent(sizes, cpus):.2f}, "
            f"wall {exponent(sizes, medians):.2f}"
        )
    print(f"timed {started} to {time.strftime('%H:%M:%S UTC', time.gmtime())}; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
