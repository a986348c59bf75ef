"""CPU-seconds, wall and peak RSS of checking a 2M-row annotation file, before vs after.

``kinetix annotations stats k400 --split val --file X`` is the command that checks a file (rows,
classes, duplicates, every row's format). The file is built in /tmp from the real CVDF K400 val
rows (``bench_catalog.build_csv``: segments shifted per repeat, so every key is unique and each
video id repeats). "before" runs the same command with ``PYTHONPATH`` set to the ``src`` of
``--before-ref`` (exported with ``git archive``), "after" with this tree's ``src``; rounds are
interleaved, each run a fresh interpreter measured with ``wait4`` (its own CPU and peak RSS).

    python benchmarks/bench_annotation_check.py --before-ref <commit> [--rows 2000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog import build_csv

REPO = Path(__file__).resolve().parents[1]


def export_src(ref: str, dest: Path) -> Path:
    """``src/`` of ``ref`` written under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "src.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def imported_from(src: Path) -> Path:
    """Where ``import kinetix`` resolves with ``PYTHONPATH=src`` (checked: not the editable one)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    code = "import kinetix; print(kinetix.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    where = Path(out.stdout.strip())
    if not where.is_relative_to(src):
        raise SystemExit(f"PYTHONPATH={src} imports kinetix from {where}")
    return where


def run_once(src: Path, csv: Path) -> tuple[float, float, float, str]:
    """(CPU-s, wall s, peak RSS MB, stdout) of one check in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(src))
    argv = [
        sys.executable,
        "-m",
        "kinetix.cli.main",
        "annotations",
        "stats",
        "k400",
        "--split",
        "val",
    ]
    started = time.monotonic()
    proc = subprocess.Popen([*argv, "--file", str(csv)], env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{src}: the check exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before-ref", required=True, help="commit whose src/ is 'before'")
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="kinetix-bench-check-", dir="/tmp") as tmp:
        work = Path(tmp)
        csv = work / "k400_val_2m.csv"
        build_csv(csv, args.rows)
        print(f"{args.rows:,} rows, {csv.stat().st_size / 1e6:.0f} MB; load {os.getloadavg()}")
        trees = {"before": export_src(args.before_ref, work / "before"), "after": REPO / "src"}
        for src in trees.values():
            imported_from(src)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
        outputs: dict[str, str] = {}
        for round_ in range(args.rounds):
            for name, src in trees.items():
                cpu, wall, rss, out = run_once(src, csv)
                results[name].append((cpu, wall, rss))
                outputs[name] = "\n".join(out.splitlines()[1:])  # line 1 names the file
                print(f"  round {round_} {name:6s} {cpu:6.2f} CPU-s {wall:6.2f} s {rss:7.0f} MB")
        if outputs["before"] != outputs["after"]:
            raise SystemExit(f"the reports differ:\n{outputs['before']}\n---\n{outputs['after']}")
        print(f"\nload after {os.getloadavg()}; same report from both")
        print("| tree | CPU-s (median, min-max) | wall s (median, min-max) | peak RSS MB |")
        print("|---|---|---|---|")
        for name, runs in results.items():
            cells = []
            for i in range(3):
                values = [r[i] for r in runs]
                cells.append(
                    f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"
                )
            print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
