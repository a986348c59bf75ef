"""``kinetix verify DIR``: decode-check every clip, quarantine the broken ones, reconcile disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kinetix.cli.common import add_executor_flags, emit_stderr, executor_from, print_dry_run
from kinetix.config import VerifyConfig, VerifyLevel
from kinetix.errors import KinetixError

if TYPE_CHECKING:
    from kinetix.process.verify import RefetchFn

_DEFAULTS = VerifyConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check every clip decodes; quarantine broken ones; reconcile disk and manifest",
        description="Probe every present clip with PyAV and decode its first and last frame "
        "(--deep: every frame); record duration, fps, size, frame count and audio in the "
        "manifest; move unreadable, truncated, empty or wrongly trimmed clips to "
        "DIR/.kinetix/quarantine with the reason. Rerun to resume: clips already verified "
        "and unchanged are skipped. Bad clips are data, not errors: the exit code is 0.",
    )
    p.add_argument("root", metavar="DIR", help="dataset root (made by 'kinetix download')")
    p.add_argument("--deep", action="store_true", help="decode every frame, not just the ends")
    p.add_argument(
        "--refetch", action="store_true", help="download the quarantined clips again afterwards"
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="reconcile: unknown clip files become rows, vanished rows become missing",
    )
    p.add_argument("--workers", type=int, metavar="N", help="parallel checks (default: cores)")
    add_executor_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> VerifyConfig:
    return VerifyConfig(
        level=VerifyLevel.DEEP if args.deep else VerifyLevel.QUICK,
        fix=args.fix,
        refetch=args.refetch,
        workers=args.workers,
        executor=executor_from(args),
    )


def _some(items: list[str]) -> str:
    return items[0] + (f" and {len(items) - 1} more" if len(items) > 1 else "")


def _n(count: int, what: str) -> str:
    """``1 clip``, ``3 clips``: ``what`` is singular, its first word takes the plural."""
    first, _, rest = what.partition(" ")
    word = first if count == 1 else first + "s"
    return f"{count} {word}" + (f" {rest}" if rest else "")


def load_refetch() -> RefetchFn:
    """``kinetix.download.refetch``, imported only when asked: it pulls in the download stack."""
    try:
        from kinetix.download import refetch
    except ImportError as exc:
        raise KinetixError(
            f"--refetch needs kinetix.download.refetch, which this installation lacks ({exc}); "
            "run 'kinetix download' on the root instead: it fetches quarantined clips again"
        ) from None
    return refetch


def run(args: argparse.Namespace) -> int:
    from kinetix.process.verify import verify_dataset

    config = config_from(args)
    if config.executor.dry_run:
        print_dry_run(config.executor, config.workers, Path(args.root))
        return 0
    emit = None if args.no_progress else emit_stderr
    r = verify_dataset(
        args.root, config, emit=emit, refetch=load_refetch() if args.refetch else None
    )
    bad = sum(r.bad.values())
    reasons = ", ".join(f"{code} {n}" for code, n in r.bad.most_common())
    speed = f" at {r.rate:.1f} clips/s" if r.checked else ""
    print(
        f"verify {r.root} ({r.level.value}): {r.checked} checked{speed}, "
        f"{r.good} good, {bad} bad" + (f" ({reasons})" if reasons else "")
        + f", {r.skipped} skipped (verified before, unchanged)"
    )  # fmt: skip
    if r.quarantined:
        print(
            f"quarantined {_n(len(r.quarantined), 'clip')} under {r.root}/.kinetix/quarantine; "
            "'kinetix verify --refetch' (or 'kinetix download') fetches them again"
        )
    hint = "" if config.fix else "; run with --fix to "
    if r.unknown:
        print(f"{_n(len(r.unknown), 'clip file')} not in the manifest ({_some(r.unknown)})"
              + (hint + "add them" if hint else ""))  # fmt: skip
    if r.unrecognised:
        print(f"{_n(len(r.unrecognised), '.mp4 file')} not named {{split}}/{{label}}/{{key}}.mp4, "
              f"left alone ({_some(r.unrecognised)})")  # fmt: skip
    if r.vanished:
        print(f"{_n(len(r.vanished), 'clip')} recorded as present gone from disk "
              f"({_some(r.vanished)})" + (hint + "mark them missing" if hint else ""))  # fmt: skip
    if r.changed:
        print(f"{_n(len(r.changed), 'clip')} changed size since recorded, checked again "
              f"({_some(r.changed)})")  # fmt: skip
    if config.fix:
        print(f"fixed: {_n(r.added, 'file')} added to the manifest, "
              f"{_n(r.marked_missing, 'row')} marked missing")  # fmt: skip
    if config.refetch:
        got = r.refetched if r.refetched is not None else 0
        print(f"refetch: {_n(r.refetch_asked, 'clip')} quarantined asked for, {got} present again")
    for error in r.errors:
        print(f"kinetix: error: {error}", file=sys.stderr)
    return 1 if r.errors else 0
