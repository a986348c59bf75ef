"""``kinetix status DIR``: annotated / present / missing / failed by reason, per split."""

from __future__ import annotations

import argparse
import json

from kinetix.store.status import root_status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="what a dataset root holds: present, missing, failed by reason",
        description="Per split: annotated, present, missing, quarantined and failed clips "
        "(by reason), bytes on disk; for a countix / ava-kinetics root also its annotation "
        "rows, present or why not; read from the root's manifest, no network.",
    )
    p.add_argument("root", metavar="DIR", help="dataset root (made by 'kinetix download')")
    p.add_argument("--by-class", action="store_true", help="list classes, least complete first")
    p.add_argument("--limit", type=int, default=20, help="classes shown with --by-class")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    status = root_status(args.root, by_class=args.by_class)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0
    print(f"{status.root} ({status.kind or 'videos'})")
    for s in status.splits:
        print(
            f"  {s.release} {s.split}: {s.annotated} annotated, {s.present} present "
            f"({100 * s.complete:.1f}%), {s.missing} missing, {s.quarantined} quarantined, "
            f"{sum(s.failed.values())} failed, {_gb(s.bytes)} on disk"
        )
        if s.failed:
            print("    failed: " + ", ".join(f"{code} {n}" for code, n in s.failed.items()))
        if s.sources:
            print("    sources: " + ", ".join(f"{src} {n}" for src, n in s.sources.items()))
        if s.verified_good or s.verified_bad:
            print(f"    verified: {s.verified_good} good, {s.verified_bad} bad")
    for d in status.downstream:
        print(
            f"  {d.release} {d.split}: {d.rows} annotation rows, {d.present} with their clip "
            f"present ({100 * d.present / max(d.rows, 1):.1f}%)"
        )
        if d.not_present:
            print("    not present: " + ", ".join(f"{why} {n}" for why, n in d.not_present.items()))
    if status.shards:
        print(
            "  shards: " + ", ".join(f"{state} {n}" for state, n in sorted(status.shards.items()))
        )
    if status.classes is not None:
        print("  least complete classes:")
        for c in status.classes[: args.limit]:
            print(f"    {c.present:>5}/{c.annotated:<5} {c.split:5} {c.label or '(unlabeled)'}")
    return 0
