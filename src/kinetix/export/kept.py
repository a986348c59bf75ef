"""A table export that keeps what it wrote: rerun on an unchanged manifest, it writes nothing.

``manifest.csv`` / ``manifest.parquet`` of 650k clips cost 3.5-5 CPU-s to make, most of it
reading 22.8M cells out of SQLite. Exports are rerun after every small change, and after none;
when the manifest has not changed since the file in ``--out`` was written, and that file is the
one written then, the export leaves it as it is and says what it said the first time.

"Unchanged" is decided from the manifest's files, not its rows: every committed SQLite
transaction writes the database file or its ``-wal`` file, which moves that file's mtime/ctime
(and usually its size); the file's identity (device, inode) covers a manifest replaced whole
(a network-filesystem root publishes one by rename). Only a state whose files are ``SETTLED``
seconds old is remembered, so a later write, whatever the filesystem's timestamp granularity,
cannot leave the same mtime behind. Any other kinetix version or code of the table writers, or
other export options, is another key. The record is kept outside ``--out`` (which stays the
files the format has), in ``$KINETIX_STATE_DIR/kept/`` (default ``$TMPDIR/kinetix-UID/kept/``),
one small file per table path; without it, or without the table, the table is written again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kinetix
from kinetix.export.config import ExportConfig

log = logging.getLogger(__name__)

SETTLED = 2.0  # seconds a manifest's files must be unchanged before its state is remembered
_KIND = 1  # the record's own format


def manifest_state(path: Path) -> list[Any] | None:
    """What identifies the committed content of the manifest at ``path`` (its file and its
    ``-wal``: device, inode, size, mtime and ctime in ns), or None when either changed in the
    last ``SETTLED`` seconds (then it is not remembered)."""
    state: list[Any] = []
    newest = 0
    for name in (path.name, path.name + "-wal"):
        try:
            st = os.stat(path.with_name(name))
        except FileNotFoundError:
            state.append(None)
            continue
        if name != path.name and st.st_size == 0:
            state.append(None)  # an empty -wal holds nothing: the database file is all of it
            continue
        state.append([st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    if newest > time.time_ns() - int(SETTLED * 1e9):
        return None
    return state


def _code() -> str:
    """The version and the source of the code that makes the tables' bytes."""
    from kinetix.export import job, tables
    from kinetix.store import usable

    digest = hashlib.sha256(kinetix.__version__.encode())
    for module in (tables, job, usable):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


def export_key(
    config: ExportConfig, pairs: Sequence[tuple[str, str]], state: list[Any]
) -> dict[str, Any]:
    """Everything the table's bytes depend on besides the manifest's content."""
    return {
        "kind": _KIND,
        "code": _code(),
        "format": config.format.value,
        "pairs": [list(p) for p in pairs],
        "include_unverified": config.include_unverified,
        "manifest": state,
    }


def _file_id(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def record_path(table: Path) -> Path:
    """Where what ``table`` holds is recorded (one file per absolute path of a table)."""
    base = os.environ.get("KINETIX_STATE_DIR")
    top = Path(base) if base else Path(tempfile.gettempdir()) / f"kinetix-{os.getuid()}"
    digest = hashlib.sha256(str(table.absolute()).encode()).hexdigest()[:24]
    return top / "kept" / f"{digest}.json"


def kept_counts(table: Path, key: dict[str, Any]) -> dict[tuple[str, str], int] | None:
    """Rows written per (release, split) when ``table`` is the file an export with ``key``
    wrote and left in place; None when it must be written."""
    try:
        record = json.loads(record_path(table).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    if record.get("table") != str(table.absolute()) or record.get("file") != _file_id(table):
        return None
    try:
        return {(r, s): int(n) for r, s, n in record["written"]}
    except (KeyError, TypeError, ValueError):
        return None


def forget(table: Path) -> None:
    """Drop the record before a table is written (a run that dies mid-write leaves none)."""
    try:
        record_path(table).unlink(missing_ok=True)
    except OSError as exc:
        log.debug("could not remove %s: %s", record_path(table), exc)


def remember(
    table: Path,
    key: dict[str, Any],
    written: Sequence[tuple[str, str, int]],
    after: list[Any] | None,
) -> None:
    """Record that ``table`` holds the export ``key`` names, unless the manifest's files moved
    while it was written (``after``: ``manifest_state`` now), when its snapshot is not known."""
    if after != key["manifest"]:
        return
    record = {"key": key, "table": str(table.absolute()), "file": _file_id(table),
              "written": [list(w) for w in written]}  # fmt: skip
    path = record_path(table)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # the table is written; only the next rerun is not spared
        log.debug("could not write %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
