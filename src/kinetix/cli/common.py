"""Flags and parsing shared by several verbs (not a verb itself: discovery skips ``common``)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from kinetix.config import Selection
from kinetix.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def emit_stderr(line: str) -> None:
    """Where library progress lines go from the CLI: stderr, so stdout stays the result."""
    print(line, file=sys.stderr, flush=True)


def add_derive_flags(p: argparse.ArgumentParser) -> None:
    """How ``process`` and ``frames`` run: clips at once, ffmpeg threads, executor, retries."""
    p.add_argument("--workers", type=int, metavar="N", help="clips at once (default: cores)")
    p.add_argument("--threads", type=int, metavar="N", help="ffmpeg threads per clip")
    p.add_argument("--executor", default="local", help="local, dask, dask://HOST:PORT, slurm")
    p.add_argument(
        "--retry-failed", action="store_true", help="retry clips that failed in an earlier run"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")


def parse_size(text: str) -> int:
    """``4M``, ``64KiB``, ``1GB``, ``1048576`` -> bytes (binary units: shards are sized so)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 64K, 4M, 1G")
    unit = (m.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(m.group(1)) * _UNITS[unit])


def add_selection_flags(p: argparse.ArgumentParser) -> None:
    """The clip-selection flags of every verb that reads a catalog."""
    g = p.add_argument_group("selection")
    g.add_argument(
        "--classes",
        action="append",
        metavar="NAMES",
        help="comma-separated class names in any style (repeatable)",
    )
    g.add_argument("--classes-file", type=Path, metavar="FILE", help="class names, one a line")
    g.add_argument("--max-per-class", type=int, metavar="N", help="at most N clips per class")
    g.add_argument("--seed", type=int, default=0, help="seed of the --max-per-class sample")
    g.add_argument("--ids", type=Path, metavar="FILE", help="youtube ids or clip keys, one a line")


def selection_from(args: argparse.Namespace) -> Selection:
    from kinetix.catalog.select import read_class_file, read_ids_file

    classes: list[str] = []
    for item in args.classes or ():
        classes += [c.strip() for c in item.split(",") if c.strip()]
    if args.classes_file:
        classes += read_class_file(args.classes_file)
    if args.max_per_class is not None and args.max_per_class < 1:
        raise ConfigError(f"--max-per-class must be >= 1, got {args.max_per_class}")
    return Selection(
        classes=tuple(classes) or None,
        max_per_class=args.max_per_class,
        seed=args.seed,
        ids=read_ids_file(args.ids) if args.ids else None,
    )
