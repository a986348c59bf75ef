"""Resolving every AVA-Kinetics test keyframe to its K700-2020 test clip: time and peak RSS.

Reads the real files (``kinetics_test_v1.0.csv``, 64,304 keyframes; CVDF ``700_2020``
``test.csv``, 64,535 clips) and resolves each keyframe to the clip of its video whose
``[time_start, time_end)`` holds it. Each run is a fresh interpreter, so its peak RSS
(``ru_maxrss``) is its own; loaders run in interleaved rounds and the median and spread of
wall and CPU seconds are reported. The peer is the plain approach (``csv.DictReader`` both
files, a dict of clips per video, a scan per keyframe), and pandas (merge on id, filter)
when installed.

    python benchmarks/bench_downstream.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0
TARGET_MB = 300.0

_CHILD = r"""
import json, resource, sys, time
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
loader, ava, k700 = sys.argv[1:4]
if loader == "kinetix":
    from kinetix.catalog.resolve import load_resolution
    def run():
        r = load_resolution("ava-kinetics", "test", annotations=ava, base_annotations=k700)
        return r.counts()["resolved"]
elif loader == "csv+dict":
    import csv
    def run():
        with open(k700, newline="") as f:
            by_id = {}
            for row in csv.DictReader(f):
                by_id.setdefault(row["youtube_id"], []).append(
                    (int(row["time_start"]), int(row["time_end"])))
        hits = 0
        with open(ava, newline="") as f:
            for youtube_id, t in csv.reader(f):
                t = float(t)
                hits += any(s <= t < e for s, e in by_id.get(youtube_id, ()))
        return hits
elif loader == "pandas":
    import pandas
    def run():
        keys = pandas.read_csv(ava, header=None, names=["youtube_id", "timestamp"])
        keys["row"] = range(len(keys))
        clips = pandas.read_csv(k700)
        m = keys.merge(clips, on="youtube_id")
        m = m[(m.time_start <= m.timestamp) & (m.timestamp < m.time_end)]
        return int(m.row.nunique())
before = rss_mb()
start, cpu = time.perf_counter(), time.process_time()
resolved = run()
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "resolved": resolved, "rss_before_mb": before, "rss_peak_mb": rss_mb()}))
"""


def shared() -> Path:
    return Path(os.environ.get("KINETIX_SHARED_DATA", REPO.parent / "shared/data/kinetics"))


def once(loader: str, ava: Path, k700: Path) -> dict[str, float] | None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, loader, str(ava), str(k700)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        if "ModuleNotFoundError" in done.stderr:
            return None
        raise RuntimeError(f"{loader} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ava = shared() / "ava_kinetics" / "kinetics_test_v1.0.csv"
    k700 = shared() / "k700_2020" / "test.csv"
    print(f"uptime: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1/5 min load)")
    loaders = ("kinetix", "csv+dict", "pandas")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in loaders}
    for _ in range(args.rounds):  # interleaved, so load drift hits every loader alike
        for name in loaders:
            result = once(name, ava, k700)
            if result is not None:
                runs[name].append(result)
    ours = statistics.median(r["seconds"] for r in runs["kinetix"])
    print(f"{'loader':10s} {'resolved':>9s} {'wall s (median, min-max)':>26s} "
          f"{'CPU s':>6s} {'peak RSS MB':>12s} {'time x':>7s}")  # fmt: skip
    for name in loaders:
        results = runs[name]
        if not results:
            print(f"{name:10s} not installed")
            continue
        walls = [r["seconds"] for r in results]
        wall = statistics.median(walls)
        cpu = statistics.median(r["cpu"] for r in results)
        rss = max(r["rss_peak_mb"] for r in results)
        print(
            f"{name:10s} {int(results[0]['resolved']):>9,} "
            f"{wall:>8.2f} ({min(walls):.2f}-{max(walls):.2f}){'':>9s} {cpu:>6.2f} "
            f"{rss:>12.0f} {wall / ours:>7.2f}"
        )
    rss_ours = max(r["rss_peak_mb"] for r in runs["kinetix"])
    ok = ours <= TARGET_SECONDS and rss_ours <= TARGET_MB
    print(
        f"\ntarget <= {TARGET_SECONDS:.0f} s and <= {TARGET_MB:.0f} MB: "
        f"{'met' if ok else 'NOT met'} ({ours:.2f} s, {rss_ours:.0f} MB)"
    )
    print(f"uptime after: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
