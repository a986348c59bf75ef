"""Entry point: discovers the verb modules in ``kinetix.cli`` and dispatches to them."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sqlite3
import sys
from collections.abc import Sequence

from kinetix import __version__
from kinetix.errors import KinetixError

_NOT_VERBS = {"main", "common"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinetix",
        description="Fetch, verify, organise, process and load every Kinetics release.",
    )
    parser.add_argument("--version", action="version", version=f"kinetix {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import kinetix.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in _NOT_VERBS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"kinetix.cli.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KinetixError as exc:
        print(f"kinetix: error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        # damage SQLite found mid-run, past the checks made when the manifest was opened
        print(f"kinetix: error: {_manifest_failure(args, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Interrupted: the run stopped cleanly on SIGINT/SIGTERM; exit 128 + the signal number.
        signum = getattr(exc, "signum", 2)
        print("kinetix: interrupted; rerun the same command to resume", file=sys.stderr)
        return 128 + signum


def _manifest_failure(args: argparse.Namespace, exc: sqlite3.DatabaseError) -> str:
    from kinetix.store.damage import is_damage

    root = getattr(args, "root", None) or "ROOT"
    if is_damage(exc):
        return (
            f"the manifest of {root} is damaged (SQLite says: {exc}); the clips on disk are "
            f"untouched: 'kinetix repair {root}' rebuilds it from them and the catalog"
        )
    return f"the manifest of {root} could not be used (SQLite says: {exc})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
