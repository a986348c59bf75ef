"""What one shared row type would cost the download planner: ``work_rows``' read at 650k rows.

``WorkRow`` (11 columns), ``SourceClip`` (12) and ``ClipRow`` (the whole row) repeat the seven
identity columns. One tuple type for the planner and derived runs needs their 15 columns; this
times the planner's SELECT + sort + tuple build with its own 11, with the 4 extra columns read,
and with the 4 as NULL literals (a type whose fields may mean "not read"), interleaved rounds,
CPU-seconds of this process. The table is synthetic (one split, 650k rows, a file under --work).

    python benchmarks/bench_row_types.py --rows 650000 --rounds 5 --work /tmp/kx-rows
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
from collections import namedtuple
from collections.abc import Iterator
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from kinetix.store.planning import WorkRow

_ID = "release, split, key, youtube_id, time_start, time_end, label"
_PLAN = "state, error_code, source, path"
_DERIVED = "label_index, is_cc, verify, num_frames"
_COLUMNS = f"{_ID}, {_PLAN}, {_DERIVED}".split(", ")


# the one row for both: the planner's fields plus what a derived run reads
Shared = namedtuple("Shared", WorkRow._fields + tuple(_DERIVED.split(", ")))


def _rows(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(n):
        start = i % 300
        yield (
            "k700-2020", "train", f"{i:011d}_{start:06d}_{start + 10:06d}", f"{i:011d}", start,
            start + 10, f"label {i % 700}", "present", None, "cvdf",
            f"train/label_{i % 700}/{i:011d}.mp4", i % 700, 1, "good", 250,
        )  # fmt: skip


def _database(work: Path, n: int) -> Path:
    path = work / f"clips-{n}.sqlite"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path)
        db.execute(f"CREATE TABLE clips ({', '.join(_COLUMNS)})")
        db.executemany(f"INSERT INTO clips VALUES ({','.join('?' * len(_COLUMNS))})", _rows(n))
        db.commit()
        db.close()
    return path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=650_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kx-rows"))
    args = parser.parse_args()
    db = sqlite3.connect(_database(args.work, args.rows))
    variants: dict[str, tuple[str, type[tuple[Any, ...]]]] = {
        "WorkRow, 11 columns": (_PLAN, WorkRow),
        "shared, 15 read": (f"{_PLAN}, {_DERIVED}", Shared),
        "shared, 4 NULL": (f"{_PLAN}, NULL, NULL, NULL, NULL", Shared),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (columns, row_type) in variants.items():
            before = _cpu()
            rows = db.execute(
                f"SELECT {_ID}, {columns} FROM clips NOT INDEXED WHERE release=? AND split=?",
                ("k700-2020", "train"),
            ).fetchall()
            rows.sort(key=itemgetter(2))
            made = list(map(partial(tuple.__new__, row_type), rows))
            seconds[name].append(_cpu() - before)
            del rows, made
    for name, values in seconds.items():
        print(
            f"{name:20s} median {statistics.median(values):.3f} CPU-s "
            f"(range {min(values):.3f}-{max(values):.3f})"
        )
    print("load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
