"""``kinetix repair DIR``: rebuild a damaged or lost manifest from the clips on disk."""

from __future__ import annotations

import argparse

from kinetix.catalog.labels import LabelStyle
from kinetix.cli.common import add_executor_flags, emit_stderr, executor_from
from kinetix.config import RepairConfig, VerifyLevel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair",
        help="rebuild a damaged or deleted manifest from the clips on disk (downloads nothing)",
        description="Check DIR/.kinetix/manifest.sqlite page by page; if it is damaged (cut "
        "short, junk, wrong tables) or gone while clips are on disk, set it aside as "
        "manifest.sqlite.damaged-TIME, rebuild it from the annotation files and the clip files "
        "found, then verify those clips like 'kinetix verify'. Nothing is downloaded: "
        "'kinetix download' afterwards fetches only what is still missing. A healthy manifest "
        "is left alone.",
    )
    p.add_argument("root", metavar="DIR", help="dataset root (made by 'kinetix download')")
    p.add_argument("--release", help="the root's release, if it recorded none (e.g. k400)")
    p.add_argument(
        "--layout",
        choices=[s.value for s in LabelStyle],
        help="label folder style (default: recorded, else read off the folders)",
    )
    p.add_argument("--mirror", metavar="URL", help="base URL standing in for the CVDF bucket")
    p.add_argument("--offline", action="store_true", help="use cached annotation files only")
    p.add_argument("--deep", action="store_true", help="decode every frame, not just the ends")
    p.add_argument("--workers", type=int, metavar="N", help="parallel checks (default: cores)")
    add_executor_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinetix.repair import repair

    config = RepairConfig(
        release=args.release,
        layout=None if args.layout is None else LabelStyle(args.layout),
        mirror=args.mirror,
        offline=args.offline,
        level=VerifyLevel.DEEP if args.deep else VerifyLevel.QUICK,
        workers=args.workers,
        executor=executor_from(args),
    )
    r = repair(args.root, config, emit=None if args.no_progress else emit_stderr)
    if r.problem is None:
        print(f"repair {r.root}: the manifest is healthy; nothing rebuilt")
        return 0
    aside = f"; the damaged file is {r.set_aside}" if r.set_aside else ""
    print(f"repair {r.root}: the manifest could not be used: {r.problem}{aside}")
    print(
        f"rebuilt: {r.release} ({r.layout} layout), {r.annotated} annotated clips, "
        f"{r.found} clip files found, {r.quarantined} quarantined"
        + (f", {len(r.unmatched)} files no annotation names (left alone)" if r.unmatched else "")
    )
    if r.downstream_rows:
        print(f"annotation rows recorded again from the kept copy: {r.downstream_rows}")
    v = r.verify
    if v is not None:
        bad = sum(v.bad.values())
        reasons = ", ".join(f"{code} {n}" for code, n in v.bad.most_common())
        print(f"verified: {v.good} good, {bad} bad" + (f" ({reasons}, quarantined)" if bad else ""))
        for error in v.errors:
            print(f"kinetix: error: {error}")
    print(f"'kinetix download --root {r.root} ...' fetches what is still missing")
    return 1 if v is not None and v.errors else 0
