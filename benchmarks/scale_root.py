"""Build a synthetic dataset root of N clips: annotations, manifest rows and one file per clip.

Rows are real annotation rows (K400 val, 400 classes; K700-2020 val, 700 classes) repeated
with their segments shifted so every key is unique, written as a CSV of the given split. The
manifest is filled by kinetix's own ``add_clips`` and then one SQL ``UPDATE`` marks every row
present and verified good at ``{split}/{label_folder}/{key}.mp4`` (layout ``underscore``, so
list exports need no ``--link-dir``); each file is an
empty file made with ``os.open``. Everything a rerun, ``status``, ``export`` or
``KineticsDataset`` reads is there, so they have nothing to do but read.

    python benchmarks/scale_root.py ROOT --clips 650000 [--release k400] [--split train]

writes ``ROOT`` and its annotation file ``ROOT.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SOURCES = {"k400": "k400/val.csv", "k700-2020": "k700_2020/val.csv"}


def shared_data() -> Path:
    """``$KINETIX_SHARED_DATA``, else ``shared/data/kinetics`` beside the repo (or beside the
    folder of worktrees it is in)."""
    if "KINETIX_SHARED_DATA" in os.environ:
        return Path(os.environ["KINETIX_SHARED_DATA"])
    for top in (REPO.parent, REPO.parent.parent):
        if (top / "shared/data/kinetics").is_dir():
            return top / "shared/data/kinetics"
    return REPO.parent / "shared/data/kinetics"


def real_rows(release: str) -> list[tuple[str, str, int, int]]:
    """(label, youtube_id, start, end) of a real labelled split of ``release``."""
    source = shared_data() / _SOURCES[release]
    if not source.is_file():
        raise SystemExit(f"{source} not found; set KINETIX_SHARED_DATA to the shared/data/kinetics")
    with source.open(newline="") as f:
        reader = csv.DictReader(f)
        return [
            (r["label"], r["youtube_id"], int(r["time_start"]), int(r["time_end"])) for r in reader
        ]


def write_annotations(path: Path, count: int, release: str, split: str) -> None:
    """``count`` rows in the CVDF layout; repeat r shifts every segment by r * 100,000 s."""
    rows = real_rows(release)
    with path.open("w", newline="") as f:
        f.write("label,youtube_id,time_start,time_end,split\n")
        for i in range(count):
            label, youtube_id, start, end = rows[i % len(rows)]
            shift = (i // len(rows)) * 100_000
            quoted = f'"{label}"' if "," in label or " " in label else label
            f.write(f"{quoted},{youtube_id},{start + shift},{end + shift},{split}\n")


def build_root(root: Path, count: int, *, release: str = "k400", split: str = "train") -> Path:
    """Make ``root`` (and ``root.csv``) with ``count`` present, verified clips; returns the CSV."""
    from kinetix.catalog.labels import LabelRegistry
    from kinetix.catalog.parse import read_annotations
    from kinetix.store.layout import manifest_path
    from kinetix.store.manifest import Manifest

    root.mkdir(parents=True, exist_ok=True)
    annotations = root.with_name(root.name + ".csv")
    write_annotations(annotations, count, release, split)
    clips = read_annotations(annotations, release=release, split=split)
    registry = LabelRegistry.for_release(release)
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", release)
        m.set_meta("layout", "underscore")
        m.add_clips(clips, registry.indices)
    now = time.time()
    db = sqlite3.connect(manifest_path(root))
    with db:
        db.execute(
            "UPDATE clips SET state='present', source='cvdf', "
            "path=split || '/' || replace(label, ' ', '_') || '/' || key || '.mp4', bytes=0, "
            "mtime=?, verify='good', verify_level='quick', "
            "verified_at=?, duration=10.0, fps=25.0, width=340, height=256, num_frames=250, "
            "codec='h264', has_audio=1, trim=NULL, updated_at=?",
            (now, now, now),
        )
    for label in {c.label for c in clips}:
        (root / split / str(label).replace(" ", "_")).mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT
    base = str(root) + "/"
    for (path,) in db.execute("SELECT path FROM clips"):
        os.close(os.open(base + path, flags, 0o644))
    db.close()
    return annotations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--clips", type=int, default=650_000)
    parser.add_argument("--release", default="k400", choices=sorted(_SOURCES))
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    started = time.perf_counter()
    csv_path = build_root(args.root, args.clips, release=args.release, split=args.split)
    print(
        f"{args.root}: {args.clips:,} clips ({csv_path.name}) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
