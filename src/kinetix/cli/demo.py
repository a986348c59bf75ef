"""``kinetix demo``: the whole pipeline, offline, against a synthetic mirror on 127.0.0.1."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline offline against a synthetic mirror (generated data)",
        description="Builds a small synthetic CVDF mirror (real annotation rows, generated "
        "videos), serves it on 127.0.0.1, then fetches annotations, downloads from the shards "
        "and from 'YouTube' (mirror-served source videos), verifies, resizes, extracts frames, "
        "exports lists and loads a batch. No network besides 127.0.0.1.",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="where to put everything, kept at the end (default: a temp dir, removed at the end)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dir at the end and say where it is"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinetix.demo import run_demo

    run_demo(args.workdir, keep=args.keep, say=lambda line: print(line, flush=True))
    return 0
