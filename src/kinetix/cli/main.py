"""Entry point: discovers the verb modules in ``kinetix.cli`` and dispatches to them.

Exit codes (README "Exit codes"): 0 done; 1 work failed (network, disk, archives, clips that
failed; a rerun resumes; ``--strict`` also counts clips left unavailable); 2 usage or setup
error, nothing was done (bad flag, unknown class, empty selection, not a root, root in use,
unwritable root or cache, missing extra); 128 + N stopped by signal N (130 Ctrl-C, 143
SIGTERM).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import shlex
import sqlite3
import sys
from collections.abc import Iterator, Sequence

from kinetix import __version__, crashpoints
from kinetix.errors import (
    AnnotationError,
    ConfigError,
    KinetixError,
    ManifestError,
    MissingDependencyError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The command, its inputs, the root or the install cannot be used as given: nothing was done.
# Anything else (network, disk, archives, ffmpeg) is work that failed: exit 1, rerun to resume.
_USAGE_ERRORS = (ConfigError, AnnotationError, ManifestError, MissingDependencyError)
_NOT_VERBS = {"main", "common"}
logger = logging.getLogger("kinetix")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinetix",
        description="Fetch, verify, organise, process and load every Kinetics release.",
        epilog="exit codes: 0 done; 1 work failed (rerun to resume; --strict: or clips left "
        "unavailable); 2 usage or setup error, nothing done; 130 Ctrl-C, 143 SIGTERM",
    )
    parser.add_argument("--version", action="version", version=f"kinetix {__version__}")
    _add_verbosity(parser, dest_suffix="")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import kinetix.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in _NOT_VERBS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"kinetix.cli.{info.name}")
        module.register(sub)
    for verb in _verb_parsers(parser):
        # -v / -q work after the verb too (``kinetix download ... -v``)
        _add_verbosity(verb, dest_suffix="_after_verb")
        _show_defaults(verb)
    return parser


def _add_verbosity(p: argparse.ArgumentParser, *, dest_suffix: str) -> None:
    default = 0 if not dest_suffix else argparse.SUPPRESS
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        dest="verbose" + dest_suffix,
        help="more log output (-vv: debug, with tracebacks)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        dest="quiet" + dest_suffix,
        help="only errors on stderr (no warnings, no progress)",
    )


def _verb_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below ``parser`` (verbs, and actions such as ``annotations labels``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases appear twice
                yield child
                yield from _verb_parsers(child)


def _show_defaults(p: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to each option's help unless it says its default already."""
    for action in p._actions:
        default = action.default
        if (
            not action.option_strings
            or default in (None, False, argparse.SUPPRESS)
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
            or "default" in (action.help or "")
        ):
            continue
        shown = getattr(default, "value", default)  # enums show their value
        if isinstance(shown, list | tuple):
            continue
        text = str(shown).replace("%", "%%")
        action.help = f"{action.help} (default: {text})" if action.help else f"default: {text}"


def _verbosity(args: argparse.Namespace) -> int:
    """-v / -q before and after the verb add up: >0 more, <0 less than warnings."""
    verbose = args.verbose + getattr(args, "verbose_after_verb", 0)
    quiet = args.quiet + getattr(args, "quiet_after_verb", 0)
    return verbose - quiet


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from kinetix.card import COMMAND

    # what the dataset cards of the roots and exports this command writes say made them
    token = COMMAND.set(shlex.join(["kinetix", *(sys.argv[1:] if argv is None else argv)]))
    try:
        return _run(args)
    finally:
        COMMAND.reset(token)


def _run(args: argparse.Namespace) -> int:
    verbosity = _verbosity(args)
    level = logging.WARNING - 10 * min(verbosity, 2) if verbosity >= 0 else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbosity < 0 and hasattr(args, "no_progress"):
        args.no_progress = True
    crashpoints.arm()  # tests only: KINETIX_CRASH_AT names a phase to kill -9 this run at
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that went away is caught below
        return code
    except _USAGE_ERRORS as exc:
        return _fail(exc, EXIT_USAGE)
    except KinetixError as exc:
        return _fail(exc, EXIT_FAILED)
    except sqlite3.DatabaseError as exc:
        # damage SQLite found mid-run, past the checks made when the manifest was opened
        return _fail(exc, EXIT_USAGE, _manifest_failure(args, exc))
    except KeyboardInterrupt as exc:
        # Interrupted: the run stopped cleanly on SIGINT/SIGTERM; exit 128 + the signal number.
        signum = getattr(exc, "signum", 2)
        print("kinetix: interrupted; rerun the same command to resume", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # the reader went away (``kinetix annotations labels k400 | head -2``): not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # the machine refused (permissions, read-only, full): one line
        return _fail(exc, EXIT_FAILED, _describe_os_error(exc))


def _fail(exc: BaseException, code: int, message: str | None = None) -> int:
    logger.debug("traceback of the error below", exc_info=exc)
    print(f"kinetix: error: {message or exc}", file=sys.stderr)
    return code


def _describe_os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc)
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a writable location (or fix its permissions) and rerun"
    elif exc.errno == errno.ENOSPC:
        hint = "; free some space and rerun the same command to resume"
    return f"{where}{what}{hint} (-vv shows the traceback)"


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
