"""What the row types cost per row at 650k: the planner's, a derived run's and ``ClipRow``.

One definition of the identity columns (``store/rows.py``): ``WorkRow`` is the planner's lean
row, a derived run's ``SourceClip`` is a ``WorkRow`` and four columns more, ``ClipRow`` is a
``WorkRow`` whose ``values`` hold the rest. Each is timed against the shape it replaced, and
the planner's row against one flat 15-column row for the planner and derived runs (read, or
with the derived columns as NULL literals). Interleaved rounds, CPU-seconds of this process,
the collector paused where the code pauses it (the planner's and a derived run's read, not
the old derived read nor ``ClipRow``s); the manifest is a real one (``Manifest`` schema, one
split of 650k rows, present and verified), a file under --work.

    python benchmarks/bench_row_types.py --rows 650000 --rounds 5 --work /tmp/kx-rows
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sqlite3
import statistics
from collections import namedtuple
from collections.abc import Callable
from dataclasses import make_dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from kinetix.catalog.clip import Clip
from kinetix.process.derived import source_clips
from kinetix.store.manifest import Manifest, _to_row
from kinetix.store.rows import ID_FIELDS, WORK_COLUMNS, work_rows_of

_RELEASE, _SPLIT = "k700-2020", "train"
_DERIVED = ("label_index", "is_cc", "verify", "num_frames")
# before: one flat row per reader, each restating the identity columns
_FlatSource = namedtuple(  # type: ignore[misc]
    "_FlatSource", (*ID_FIELDS, "label_index", "is_cc", "path", "verify", "num_frames")
)
_Flat15 = namedtuple("_Flat15", (*WORK_COLUMNS, *_DERIVED))  # type: ignore[misc]


# ``ClipRow`` before: a frozen dataclass of the identity columns and ``values``
_DataclassRow = make_dataclass("_DataclassRow", [*ID_FIELDS, "values"], frozen=True)


def _manifest(work: Path, n: int) -> Path:
    path = work / f"manifest-{n}.sqlite"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        clips = [
            Clip(_RELEASE, _SPLIT, f"{i:011d}", i % 300, i % 300 + 10, f"label {i % 700}")
            for i in range(n)
        ]
        with Manifest(path) as m:
            m.add_clips(clips, {f"label {i}": i for i in range(700)})
        db = sqlite3.connect(path)
        db.execute(
            "UPDATE clips SET state='present', source='cvdf', bytes=1000, verify='good', "
            "num_frames=250, path=split || '/' || label || '/' || key || '.mp4'"
        )
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
    parser.add_argument("--only", default="", help="comma-separated name parts to run")
    args = parser.parse_args()
    path = _manifest(args.work, args.rows)
    db = sqlite3.connect(path)
    manifest = Manifest(path, readonly=True)
    scan = f"FROM clips NOT INDEXED WHERE release='{_RELEASE}' AND split='{_SPLIT}'"

    def planner(columns: str, make: Callable[[list[Any]], list[Any]]) -> Callable[[], object]:
        def run() -> object:
            rows = db.execute(f"SELECT {columns} {scan}").fetchall()
            rows.sort(key=itemgetter(2))
            return make(rows)

        return run

    def flat_source() -> object:  # source_rows before: 12 columns, a Python call per row
        rows = manifest.select(
            _FlatSource._fields, states=["present"], skip_verified_bad=True, order=True
        )
        return [_FlatSource(*r) for r in rows]

    def whole(make: Callable[[sqlite3.Row], object]) -> Callable[[], object]:
        def run() -> object:
            cur = db.execute(f"SELECT * {scan}")
            cur.row_factory = sqlite3.Row
            return list(map(make, cur))

        return run

    def dataclass_row(r: sqlite3.Row) -> Any:
        d = dict(r)
        return _DataclassRow(
            d.pop("release"), d.pop("split"), d.pop("key"), d.pop("youtube_id"),
            d.pop("time_start"), d.pop("time_end"), d.pop("label"), d,
        )  # fmt: skip

    work = ", ".join(WORK_COLUMNS)
    flat15 = partial(map, partial(tuple.__new__, _Flat15))
    variants: dict[str, Callable[[], object]] = {
        "planner: WorkRow, 11 columns": planner(work, work_rows_of),
        "planner: flat 15, all read": planner(f"{work}, {', '.join(_DERIVED)}", flat15),
        "planner: flat 15, 4 NULL": planner(f"{work}, NULL, NULL, NULL, NULL", flat15),
        "derived: flat SourceClip (before)": flat_source,
        "derived: WorkRow + 4 (after)": lambda: source_clips(manifest),
        "ClipRow: dataclass (before)": whole(dataclass_row),
        "ClipRow: on WorkRow (after)": whole(_to_row),
    }
    if args.only:
        parts = args.only.split(",")
        variants = {k: v for k, v in variants.items() if any(p in k for p in parts)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            gc.collect()
            if name.startswith("planner"):
                gc.disable()  # as the download job pauses it; source_clips pauses itself
            before = _cpu()
            made = run()
            seconds[name].append(_cpu() - before)
            gc.enable()
            del made
    for name, values in seconds.items():
        print(
            f"{name:34s} median {statistics.median(values):.3f} CPU-s "
            f"(range {min(values):.3f}-{max(values):.3f})"
        )
    print("load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
