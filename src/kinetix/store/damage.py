"""Telling a damaged manifest from a usable one, cheaply, before anything reads or writes it.

A manifest can be cut short (a copy that stopped, a full disk), overwritten with junk, deleted,
or hold tables that are not kinetix's (another tool's file under that name, a hand edit). SQLite
notices some of this only when it reads the damaged page, as a ``DatabaseError`` deep inside a
run; ``diagnose`` checks what can be checked without reading every page: the header, the size
the header declares against the file's size, and the tables and columns kinetix needs. A
damaged manifest becomes one ``ManifestDamagedError`` naming the way back (``kinetix repair``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import struct
from pathlib import Path
from typing import Any

from kinetix.durable import write_text_atomic
from kinetix.errors import ManifestDamagedError
from kinetix.store.layout import STATE_DIR

_MAGIC = b"SQLite format 3\x00"
# What every kinetix manifest since schema 1 has; newer columns are added by migration.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "clips": ("release", "split", "key", "youtube_id", "time_start", "time_end", "label",
              "state", "path", "bytes"),
    "shards": ("url", "state"),
}  # fmt: skip
META_COPY = "meta.json"  # ROOT/.kinetix/meta.json: the manifest's meta, kept outside it


def diagnose_file(path: Path) -> str | None:
    """What is wrong with the manifest file at ``path`` as bytes (None: nothing seen).

    A missing file is not diagnosed here: whether that is damage depends on the root.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if size == 0:
        return None  # an empty file is an empty database: what a kill at creation leaves
    if not header.startswith(_MAGIC):
        return "it is not an SQLite database (junk or another file in its place)"
    if len(header) < 100:
        return f"it is cut short ({size} bytes, less than an SQLite header)"
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages, counter, valid_for = (struct.unpack(">I", header[o : o + 4])[0] for o in (28, 24, 92))
    # The header's page count is trusted when its version stamp matches (SQLite >= 3.7.0).
    # With a -wal beside it a checkpoint may be growing the file right now: SQLite itself
    # reports a short file then, when it reads past the end.
    wal = path.with_name(path.name + "-wal")
    growing = wal.exists() and wal.stat().st_size > 0
    if pages and counter == valid_for and size < pages * page_size and not growing:
        return f"it is cut short ({size} of {pages * page_size} bytes)"
    return None


def never_made(db: sqlite3.Connection) -> bool:
    """An opened manifest holding no table at all in at most one page: a database not yet made.

    That is what a kill leaves while a new root's manifest is created (the header written, the
    tables' transaction not committed), like an empty file; it is not damage.
    """
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return tables == 0 and db.execute("PRAGMA page_count").fetchone()[0] <= 1


def schema_problem(db: sqlite3.Connection) -> str | None:
    """What kinetix tables or columns an opened manifest lacks (None: it has them all)."""
    have: dict[str, set[str]] = {}
    for table in _REQUIRED:
        have[table] = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    if not any(have.values()):
        return "it holds none of the kinetix tables (not a kinetix manifest)"
    for table, columns in _REQUIRED.items():
        if not have[table]:
            return f"its {table} table is missing"
        lacking = [c for c in columns if c not in have[table]]
        if lacking:
            return f"its {table} table lacks the columns {', '.join(lacking)} (wrong schema)"
    return None


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error says the file is corrupt or not a database (not locked, not I/O)."""
    return getattr(exc, "sqlite_errorname", None) in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def damaged_error(path: Path, problem: str) -> ManifestDamagedError:
    """The one-line error for a damaged manifest: what happened and the way back."""
    root = path.parent.parent if path.parent.name == STATE_DIR else path.parent
    return ManifestDamagedError(
        f"the manifest {path} is damaged: {problem}. The clips on disk are untouched; "
        f"'kinetix repair {root}' rebuilds it from them and the catalog (verifying them, "
        "downloading nothing)"
    )


def meta_copy_path(manifest: Path) -> Path:
    return manifest.with_name(META_COPY)


def write_meta_copy(manifest: Path, meta: dict[str, str]) -> None:
    """Keep the manifest's meta (release, layout, kind, mirror ...) beside it, atomically."""
    with contextlib.suppress(OSError):  # a convenience for repair, never a reason to fail a run
        write_text_atomic(
            meta_copy_path(manifest), json.dumps(meta, indent=1, sort_keys=True) + "\n"
        )


def read_meta_copy(manifest: Path) -> dict[str, Any]:
    try:
        data = json.loads(meta_copy_path(manifest).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def manifest_absent(path: Path) -> bool:
    """No manifest, or an empty file (a run killed as it created one): nothing recorded."""
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def check_manifest(path: Path) -> str | None:
    """What is wrong with a manifest (None: healthy), reading every page (``quick_check``)."""
    from kinetix.store.database import open_reader

    if manifest_absent(path):
        return "it is missing" if not path.exists() else "it is empty"
    problem = diagnose_file(path)
    if problem is not None:
        return problem
    try:
        db = open_reader(path)
        try:
            problem = schema_problem(db)
            if problem is None:
                result = [r[0] for r in db.execute("PRAGMA quick_check(100)")]
                if result != ["ok"]:
                    first = result[0].splitlines()[0]
                    problem = f"SQLite's check finds {len(result)} problem(s), first: {first}"
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        problem = f"SQLite says: {exc}"
    return problem


def salvage_meta(path: Path) -> dict[str, str]:
    """A damaged root's meta: the copy beside the manifest, else whatever the file yields."""
    meta = {k: str(v) for k, v in read_meta_copy(path).items()}
    if meta or manifest_absent(path):
        return meta
    try:
        db = sqlite3.connect(f"file:{path.absolute()}?mode=ro&immutable=1", uri=True)
        try:
            return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        finally:
            db.close()
    except sqlite3.Error:
        return {}
