"""The Arrow reads against the row/SQL-text paths they replace, on one root, interleaved.

``export --format csv|parquet`` and ``KineticsDataset(...)`` each run as their own process
twice per round: as installed (ADBC into Arrow, when pyarrow and adbc-driver-sqlite are there)
and with ``ARROW_MIN_ROWS`` patched past the root's size (the fallback every install without
the ``parquet`` extra takes, and splits under 50k rows). Prints median CPU-s (user + system of
the child), wall, and the fallback/Arrow CPU ratio. Use a root from ``scale_root.py`` (as
``bench_scale`` builds them).

    python benchmarks/bench_arrow_paths.py /tmp/kx-scale-bench/root650000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import load, run

# never a table kept from the last run (export/kept.py): both paths write it every time
_ROWS = (
    "import sys, kinetix.store.usable as u, kinetix.export.kept as k\nk.SETTLED = 1e9\n"
    "if sys.argv[1] == 'rows': u.ARROW_MIN_ROWS = 2**62\n"
)
_EXPORT = (
    _ROWS + "from kinetix.cli.main import main\n"
    "sys.exit(main(['export', sys.argv[2], '--format', sys.argv[3], '--out', sys.argv[4]]))"
)
_DATASET = (
    _ROWS + "from kinetix.data import KineticsDataset\n"
    "print(len(KineticsDataset(sys.argv[2], 'train', frames_per_clip=16)))"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kinetix-bench-arrow"))
    args = parser.parse_args()
    cases = {
        f"{what} {path}": [sys.executable, "-c", code, path, str(args.root), *extra]
        for what, code, extra in (
            ("export csv", _EXPORT, ["csv", str(args.out)]),
            ("export parquet", _EXPORT, ["parquet", str(args.out)]),
            ("KineticsDataset", _DATASET, []),
        )
        for path in ("arrow", "rows")
    }
    print(f"start: {load()}", flush=True)
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, argv in cases.items():
            got[name].append(run(argv))
    print(f"end: {load()}")
    cpu = {name: statistics.median(c for _, c in runs) for name, runs in got.items()}
    for name, runs in got.items():
        walls = [w for w, _ in runs]
        print(
            f"{name:<24} cpu {cpu[name]:5.2f} (min {min(c for _, c in runs):.2f} max "
            f"{max(c for _, c in runs):.2f})  wall {statistics.median(walls):6.2f}"
        )
    for what in ("export csv", "export parquet", "KineticsDataset"):
        print(f"{what}: fallback / Arrow CPU {cpu[what + ' rows'] / cpu[what + ' arrow']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
