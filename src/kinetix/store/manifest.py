"""The manifest: one SQLite row per clip (and per shard) saying what exists, where, and why not.

Only one process writes it (the parent of a run); workers return ``ClipUpdate`` values
that the parent applies in batches. Readers (status, export, the dataset loader) may
open it read-only at any time, from any host, and on a read-only mount: ``store/database.py``
chooses how the file is opened for the filesystem it is on.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from kinetix.catalog.clip import Clip, clip_keys
from kinetix.crashpoints import crash_point
from kinetix.errors import ManifestError
from kinetix.store.damage import (
    damaged_error,
    diagnose_file,
    is_damage,
    manifest_absent,
    never_made,
    schema_problem,
    write_meta_copy,
)
from kinetix.store.database import Writer, open_reader
from kinetix.store.downstream import DOWNSTREAM_ROWS_DDL
from kinetix.store.layout import missing_manifest_error
from kinetix.store.rows import ID_FIELDS, WORK_COLUMNS, WorkRow, tuple_field

# 2: ``clips.integrity``. 3: table ``downstream_rows`` (store/downstream.py). Older roots are
# migrated when opened for writing (columns a version adds are added to the tables, tables it
# adds are created); read-only openers read them as they are.
SCHEMA_VERSION = 3


class ClipState(str, Enum):
    MISSING = "missing"  # annotated, not on disk yet
    PRESENT = "present"  # on disk at ``path``
    FAILED = "failed"  # last attempt failed, see error_code
    QUARANTINED = "quarantined"  # moved aside by verify


# Columns a caller may set through ``ClipUpdate.fields``; anything else is a bug.
CLIP_COLUMNS: dict[str, str] = {
    "label_index": "INTEGER",
    "is_cc": "INTEGER",
    "state": "TEXT NOT NULL DEFAULT 'missing'",
    "source": "TEXT",  # cvdf | cvdf_replacement | youtube | local | derived
    "shard": "TEXT",
    "path": "TEXT",  # relative to the root
    "bytes": "INTEGER",
    "sha256": "TEXT",
    "mtime": "REAL",
    # the check a CVDF clip's bytes passed: etag_md5 | gzip_crc | none (NULL: not from a shard,
    # or placed by a kinetix older than schema 2)
    "integrity": "TEXT",
    "error_code": "TEXT",
    "error_message": "TEXT",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "trim": "TEXT",  # exact | fast (youtube)
    "start_offset": "REAL",  # fast trim: seconds between time_start and the first frame
    "origin": "TEXT",  # derived datasets: the source clip's absolute path
    "verify": "TEXT",  # good | bad | NULL (not verified)
    "verify_level": "TEXT",  # quick | deep
    "verified_at": "REAL",
    "duration": "REAL",
    "fps": "REAL",
    "width": "INTEGER",
    "height": "INTEGER",
    "num_frames": "INTEGER",
    "codec": "TEXT",
    "has_audio": "INTEGER",
    "created_at": "REAL",
    "updated_at": "REAL",
}

SHARD_COLUMNS: dict[str, str] = {
    "release": "TEXT",
    "split": "TEXT",
    "name": "TEXT",
    "size": "INTEGER",
    "etag": "TEXT",
    "bytes_done": "INTEGER NOT NULL DEFAULT 0",
    "state": "TEXT NOT NULL DEFAULT 'pending'",  # pending | partial | done | failed
    "members": "INTEGER",
    "error_code": "TEXT",
    "error_message": "TEXT",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "updated_at": "REAL",
}

# Per-group clip counts kept by triggers, so ``status`` reads a few hundred rows, not every clip.
# NULLs are stored as '' (a primary key treats NULLs as distinct) and read back as None.
COUNT_KEYS = ("release", "split", "label", "state", "error_code", "verify", "source")
_COUNT_KEY_SQL = ", ".join(COUNT_KEYS)


def _count_values(row: str) -> str:
    return ", ".join(f"coalesce({row}.{k}, '')" for k in COUNT_KEYS)


def _count_match(row: str) -> str:
    return " AND ".join(f"{k}=coalesce({row}.{k}, '')" for k in COUNT_KEYS)


_COUNT_TRIGGERS = (
    f"""CREATE TRIGGER IF NOT EXISTS clip_counts_insert AFTER INSERT ON clips BEGIN
        INSERT INTO clip_counts VALUES ({_count_values("NEW")}, 1, coalesce(NEW.bytes, 0))
        ON CONFLICT DO UPDATE SET clips=clips+1, bytes=bytes+excluded.bytes; END""",
    f"""CREATE TRIGGER IF NOT EXISTS clip_counts_delete AFTER DELETE ON clips BEGIN
        UPDATE clip_counts SET clips=clips-1, bytes=bytes-coalesce(OLD.bytes, 0)
        WHERE {_count_match("OLD")}; END""",
    f"""CREATE TRIGGER IF NOT EXISTS clip_counts_update
        AFTER UPDATE OF {_COUNT_KEY_SQL}, bytes ON clips
        WHEN ({", ".join(f"OLD.{k}" for k in (*COUNT_KEYS, "bytes"))})
            IS NOT ({", ".join(f"NEW.{k}" for k in (*COUNT_KEYS, "bytes"))}) BEGIN
        UPDATE clip_counts SET clips=clips-1, bytes=bytes-coalesce(OLD.bytes, 0)
        WHERE {_count_match("OLD")};
        INSERT INTO clip_counts VALUES ({_count_values("NEW")}, 1, coalesce(NEW.bytes, 0))
        ON CONFLICT DO UPDATE SET clips=clips+1, bytes=bytes+excluded.bytes; END""",
)

WAL_AUTOCHECKPOINT = 1000  # pages: SQLite's default, restored after a deferred checkpoint

# add_clips batches at least this big insert with the counters' trigger set aside (see there)
BULK_ROWS = 5000

# The identity columns every row has (types as exported); CLIP_COLUMNS are the rest.
ID_COLUMNS: dict[str, str] = {
    "release": "TEXT", "split": "TEXT", "key": "TEXT", "youtube_id": "TEXT",
    "time_start": "INTEGER", "time_end": "INTEGER", "label": "TEXT",
}  # fmt: skip

_ID_COLUMNS = (
    "release TEXT NOT NULL, split TEXT NOT NULL, key TEXT NOT NULL, "
    "youtube_id TEXT NOT NULL, time_start INTEGER NOT NULL, time_end INTEGER NOT NULL, label TEXT"
)


@dataclass(frozen=True)
class ClipUpdate:
    """What a worker reports about one clip; the writing process applies it."""

    release: str
    split: str
    key: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    count_attempt: bool = False  # add one to ``attempts``


class ClipRow(WorkRow):
    """One manifest row as read back: ``ClipRow(release, split, key, youtube_id, time_start,
    time_end, label, values)``, ``values`` holding every column but the identity ones. It is
    the row's ``WorkRow`` (those columns as fields) and then ``values``, one flat tuple; other
    columns read as attributes from ``values``."""

    __slots__ = ()
    values: Mapping[str, Any] = tuple_field(len(WORK_COLUMNS))

    def __new__(cls, *fields: Any) -> ClipRow:
        *identity, values = fields
        return tuple.__new__(cls, (*identity, *map(values.get, _WORK_TAIL), values))

    def __reduce__(self) -> tuple[Any, ...]:
        return ClipRow, (*self[:_IDENTITY], self.values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in zip(ID_FIELDS, self))
        return f"ClipRow({fields}, values={self.values!r})"

    def to_clip(self) -> Clip:
        cc = self.values.get("is_cc")
        return Clip(
            self.release, self.split, self.youtube_id, self.time_start, self.time_end,
            self.label, None if cc is None else bool(cc),
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        d = dict(zip(ID_FIELDS, self))
        d.update(self.values)
        return d


_IDENTITY = len(ID_FIELDS)
_WORK_TAIL = WORK_COLUMNS[_IDENTITY:]


class Manifest:
    """The SQLite manifest of one dataset root (``ROOT/.kinetix/manifest.sqlite``)."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._writer: Writer | None = None
        self._checkpoint_deferred = False  # see add_clips
        if readonly and manifest_absent(self.path):
            raise missing_manifest_error(self.path)
        # Damage is told apart before use: SQLite would report some of it only mid-run.
        problem = diagnose_file(self.path)
        if problem is not None:
            raise damaged_error(self.path, problem)
        existed = self.path.exists()
        try:
            if readonly:
                self._db = open_reader(self.path)
            else:
                self._writer = Writer(self.path)
                self._db = self._writer.db
            made = existed and not never_made(self._db)
            if readonly and not made:
                self._close_quietly()
                raise missing_manifest_error(self.path)
            problem = schema_problem(self._db) if made else None
            if problem is None and not readonly:
                self._create()
                self._writer.ensure_identity()  # type: ignore[union-attr]
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if is_damage(exc):
                raise damaged_error(self.path, f"SQLite says: {exc}") from None
            raise ManifestError(f"cannot use the manifest {self.path}: {exc}") from exc
        if problem is not None:
            self._close_quietly()
            raise damaged_error(self.path, problem)
        self._db.row_factory = sqlite3.Row
        self._check_version()

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None) or (self._writer.db if self._writer else None)
        if db is not None:
            db.close()

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        clip_cols = ", ".join(f"{k} {v}" for k, v in CLIP_COLUMNS.items())
        shard_cols = ", ".join(f"{k} {v}" for k, v in SHARD_COLUMNS.items())
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS clips ({_ID_COLUMNS}, {clip_cols}, "
                "PRIMARY KEY (release, split, key))"
            )
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS shards (url TEXT PRIMARY KEY, {shard_cols})"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS clips_state ON clips (split, state)")
            # Present rows without a path: the few a loader leaves out, counted without a scan
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS clips_no_path ON clips (split) "
                "WHERE state='present' AND (path IS NULL OR path = '')"
            )
            # What each fully read shard holds, so a later run (a bigger selection, a quarantined
            # clip) knows which shard to fetch, or that no shard has the clip, without the network.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS shard_members (url TEXT NOT NULL, key TEXT NOT NULL, "
                "bytes INTEGER, PRIMARY KEY (url, key))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS shard_members_key ON shard_members (key)")
            # AVA-Kinetics / Countix rows of a K700-2020 root and the clip each needs
            self._db.execute(DOWNSTREAM_ROWS_DDL)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self._migrate()
        self._create_counts()

    def _create_counts(self) -> None:
        """The ``clip_counts`` table and its triggers; a root made before them is counted once.

        Older kinetix versions ignore the table, and their writes still keep it right: the
        triggers live in the database.
        """
        if self._has_table("clip_counts"):
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_table("clip_counts"):  # another process may have won the race
                self._db.execute(
                    "CREATE TABLE clip_counts ("
                    + ", ".join(f"{k} TEXT NOT NULL" for k in COUNT_KEYS)
                    + f", clips INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY "
                    f"({_COUNT_KEY_SQL})) WITHOUT ROWID"
                )
                for trigger in _COUNT_TRIGGERS:
                    self._db.execute(trigger)
                self._db.execute(
                    f"INSERT INTO clip_counts SELECT {_count_values('clips')}, COUNT(*), "
                    f"COALESCE(SUM(bytes), 0) FROM clips GROUP BY {_COUNT_KEY_SQL}"
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _has_table(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    def _migrate(self) -> None:
        """Bring a root written by an older kinetix to this schema: add the columns it lacks."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row is not None else SCHEMA_VERSION
        except (sqlite3.DatabaseError, ValueError):
            return  # _check_version says what is wrong with it
        if version >= SCHEMA_VERSION:
            return
        with self._db:
            for table, columns in (("clips", CLIP_COLUMNS), ("shards", SHARD_COLUMNS)):
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns.items():
                    if name not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            self._db.execute(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )

    def _check_version(self) -> None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ManifestError(f"{self.path} is not a kinetix manifest: {exc}") from exc
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise ManifestError(
                f"{self.path} has schema {row[0]}, newer than this kinetix ({SCHEMA_VERSION}); "
                "upgrade kinetix"
            )

    # -- meta ----------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def meta(self) -> dict[str, str]:
        """The whole ``meta`` table in one read (``store/root.py`` types it)."""
        return {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        # a copy outside the database, for 'kinetix repair' when the database is damaged
        meta = dict(self._db.execute("SELECT key, value FROM meta WHERE key != 'generation'"))
        write_meta_copy(self.path, meta)

    def transaction(self) -> sqlite3.Connection:
        """The writer's connection as a transaction (``with manifest.transaction() as db``),
        for the ``store/`` modules that own a table of their own (``store/downstream.py``)."""
        if self._writer is None:
            raise ManifestError(f"{self.path} is open read-only; it cannot be written")
        return self._db

    # -- clips ---------------------------------------------------------------------
    def add_clips(
        self,
        clips: Iterable[Clip],
        label_index: Mapping[str, int] | None = None,
        *,
        keys: Sequence[str] | None = None,
    ) -> int:
        """Register annotated clips (state ``missing``); rows already known are kept as they are.

        Returns how many rows were new. ``keys``, when given, are the clips' keys in order
        (the caller has them already). Rows go in in key order, stably (of two rows with one
        key the first given wins, as before): the primary-key index then grows at its end
        instead of at ~545k random places, which was most of a fresh registration's cost. A
        big batch is inserted with the counters' insert trigger set aside and its counts added
        in one statement (a trigger per row costs more than the row), all in one transaction,
        so no reader sees counts that disagree.
        """
        clips = clips if isinstance(clips, Sequence) else list(clips)
        if not clips:
            return 0
        now = time.time()
        # column-wise, in C: no Python bytecode per row between the catalog and SQLite
        releases, splits, ids, starts, ends, labels, ccs, _ = zip(*clips)
        if keys is None:
            keys = clip_keys(clips)
        n = len(clips)
        nothing = repeat(None, n)
        index = nothing if label_index is None else map(label_index.get, labels)
        cc = ccs if ccs.count(None) == n else (None if v is None else int(v) for v in ccs)
        rows = sorted(
            zip(releases, splits, keys, ids, starts, ends, labels, index, cc, repeat(now),
                repeat(now)),
            key=itemgetter(2),
        )  # fmt: skip
        insert = (
            "INSERT OR IGNORE INTO clips (release, split, key, youtube_id, time_start, "
            "time_end, label, label_index, is_cc, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        )
        bulk = n >= BULK_ROWS and self._has_table("clip_counts")
        if bulk and self._writer is not None:
            # The WAL pages of a big registration (~120 MB at 545k rows) are copied into the
            # database by the first commit of results instead of this one (or at close): that
            # copy is not needed before the first shard starts. Readers read the WAL meanwhile.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpoint_deferred = True
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if bulk:
                (last,) = self._db.execute("SELECT coalesce(max(rowid), 0) FROM clips").fetchone()
                self._db.execute("DROP TRIGGER IF EXISTS clip_counts_insert")
            # rowcount, not total_changes: the latter counts the counters' trigger rows too
            added = max(self._db.executemany(insert, rows).rowcount, 0)
            if bulk and added == n:
                # every row is new, so its counters' group is its (release, split, label)
                self._db.executemany(
                    f"INSERT INTO clip_counts VALUES (?, ?, ?, '{ClipState.MISSING.value}', "
                    "'', '', '', ?, 0) ON CONFLICT DO UPDATE SET clips=clips+excluded.clips",
                    (
                        (release, split, label or "", count)
                        for (release, split, label), count in Counter(
                            zip(releases, splits, labels)
                        ).items()
                    ),
                )
            elif bulk:
                self._db.execute(
                    f"INSERT INTO clip_counts SELECT {_count_values('clips')}, COUNT(*), "
                    f"COALESCE(SUM(bytes), 0) FROM clips WHERE rowid > ? "
                    f"GROUP BY {_COUNT_KEY_SQL} ON CONFLICT DO UPDATE SET "
                    "clips=clips+excluded.clips, bytes=bytes+excluded.bytes",
                    (last,),
                )
            if bulk:
                self._db.execute(_COUNT_TRIGGERS[0])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added

    def has_clips(self) -> bool:
        """Whether any clip row is registered (a root an earlier run left empty has none)."""
        return self._db.execute("SELECT 1 FROM clips LIMIT 1").fetchone() is not None

    def unknown_keys(self, release: str, split: str, keys: Set[str]) -> set[str]:
        """The ``keys`` no row of ``release/split`` has; no copy of ``keys`` when all are known."""
        sql = "SELECT key FROM clips WHERE release=? AND split=?"
        cur = self._db.execute(sql, (release, split))
        cur.row_factory = None  # type: ignore[assignment]
        known = sum(map(keys.__contains__, map(itemgetter(0), cur)))
        if known == len(keys):
            return set()
        unknown = set(keys)
        cur = self._db.execute(sql, (release, split))
        cur.row_factory = None  # type: ignore[assignment]
        unknown.difference_update(map(itemgetter(0), cur))
        return unknown

    def split_size(self, release: str, split: str, state: str | ClipState | None = None) -> int:
        """Rows of ``release/split`` (in ``state``), from the trigger-kept counters."""
        if not self._has_table("clip_counts"):
            sql, args = "SELECT COUNT(*) FROM clips WHERE release=? AND split=?", [release, split]
            if state is not None:
                sql += " AND state=?"
                args.append(state.value if isinstance(state, ClipState) else state)
            return int(self._db.execute(sql, args).fetchone()[0])
        sql = "SELECT coalesce(sum(clips), 0) FROM clip_counts WHERE release=? AND split=?"
        args = [release, split]
        if state is not None:
            sql += " AND state=?"
            args.append(state.value if isinstance(state, ClipState) else state)
        return int(self._db.execute(sql, args).fetchone()[0])

    def keys_in_state(self, release: str, split: str, state: str | ClipState) -> Iterator[str]:
        """Keys of the rows of ``release/split`` in ``state``, as plain strings."""
        state = state.value if isinstance(state, ClipState) else state
        cur = self._db.execute(
            "SELECT key FROM clips WHERE release=? AND split=? AND state=?", (release, split, state)
        )
        cur.row_factory = None  # type: ignore[assignment]
        return (key for (key,) in cur)

    # -- folders of present clips (store/presence.py) ------------------------------
    def present_paths(self, release: str, split: str) -> Iterator[tuple[str, str]]:
        """(key, path) of every present clip of ``release/split`` that has a path."""
        # NOT INDEXED: a scan in table order reads ~2x faster than 650k hops through an index
        cur = self._db.execute(
            "SELECT key, path FROM clips NOT INDEXED WHERE release=? AND split=? "
            "AND state='present' AND path IS NOT NULL AND path <> ''",
            (release, split),
        )
        cur.row_factory = None  # type: ignore[assignment]
        return iter(cur)

    def folder_checks(self, release: str, split: str) -> dict[str, tuple[int, int, int]]:
        """Folder -> (mtime_ns, present clips, listed at ns) of its last listing."""
        if not self._has_table("folder_checks"):
            return {}
        cur = self._db.execute(
            "SELECT folder, mtime_ns, clips, checked_ns FROM folder_checks "
            "WHERE release=? AND split=?",
            (release, split),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in cur}

    def record_folder_checks(
        self,
        release: str,
        split: str,
        checks: Iterable[tuple[str, int, int, int]],
        *,
        replace: bool = False,
        forget: Iterable[str] = (),
    ) -> None:
        """Record (folder, mtime_ns, present clips, listed at ns) of folders just listed.

        ``replace`` drops every older record of the split first; ``forget`` drops these.
        """
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS folder_checks (release TEXT NOT NULL, "
                "split TEXT NOT NULL, folder TEXT NOT NULL, mtime_ns INTEGER NOT NULL, "
                "clips INTEGER NOT NULL, checked_ns INTEGER NOT NULL, "
                "PRIMARY KEY (release, split, folder)) WITHOUT ROWID"
            )
            if replace:
                self._db.execute(
                    "DELETE FROM folder_checks WHERE release=? AND split=?", (release, split)
                )
            self._db.executemany(
                "DELETE FROM folder_checks WHERE release=? AND split=? AND folder=?",
                ((release, split, folder) for folder in forget),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO folder_checks VALUES (?,?,?,?,?,?)",
                ((release, split, *check) for check in checks),
            )

    def _resume_checkpoints(self) -> None:
        """Checkpoints as SQLite's default again (``add_clips`` deferred one): this commit
        copies the WAL into the database."""
        if self._checkpoint_deferred:
            self._checkpoint_deferred = False
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")

    def apply(self, updates: Iterable[ClipUpdate]) -> int:
        """Apply worker results in one transaction; returns the number of rows changed."""
        self._resume_checkpoints()
        with self._db:
            changed = self._apply_rows(updates)
        if self._writer is not None:
            self._writer.maybe_publish()
        return changed

    def apply_shard(
        self,
        url: str,
        updates: Iterable[ClipUpdate],
        fields: Mapping[str, Any],
        members: Iterable[tuple[str, int | None]] | None = None,
    ) -> int:
        """A shard's result in one transaction: its clips' rows, its own row (one attempt more)
        and, when given, its member list. A run killed while recording it leaves all or none:
        never clips recorded under a shard still said to be unfinished, whose spent ``.part``
        no rerun would then claim."""
        self._resume_checkpoints()
        with self._db:
            changed = self._apply_rows(updates)
            crash_point("download.commit")
            self._set_shard_row(url, count_attempt=True, **fields)
            if members is not None:
                self._set_members(url, members)
        if self._writer is not None:
            self._writer.maybe_publish()
        return changed

    def _apply_rows(self, updates: Iterable[ClipUpdate]) -> int:
        now = time.time()
        changed = 0
        for u in updates:
            cols = dict(u.fields)
            unknown = set(cols) - set(CLIP_COLUMNS)
            if unknown:
                raise ManifestError(f"unknown manifest columns {sorted(unknown)}")
            if isinstance(cols.get("state"), ClipState):
                cols["state"] = cols["state"].value
            cols["updated_at"] = now
            sets = ", ".join(f"{k}=?" for k in cols)
            if u.count_attempt:
                sets += ", attempts=attempts+1"
            cur = self._db.execute(
                f"UPDATE clips SET {sets} WHERE release=? AND split=? AND key=?",
                (*cols.values(), u.release, u.split, u.key),
            )
            changed += cur.rowcount
        return changed

    def update(self, release: str, split: str, key: str, **fields: Any) -> int:
        return self.apply([ClipUpdate(release, split, key, fields)])

    def clips(
        self,
        *,
        release: str | None = None,
        split: str | None = None,
        states: Iterable[str | ClipState] | None = None,
        keys: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        verify: Iterable[str | None] | None = None,
        error_codes: Iterable[str] | None = None,
        order: str = "split, label, key",
    ) -> Iterator[ClipRow]:
        """Rows matching every filter given, in a stable order."""
        where: list[str] = []
        args: list[Any] = []

        def _in(col: str, values: Iterable[Any]) -> None:
            vals = [v.value if isinstance(v, Enum) else v for v in values]
            non_null = [v for v in vals if v is not None]
            parts = []
            if non_null:
                parts.append(f"{col} IN ({','.join('?' * len(non_null))})")
                args.extend(non_null)
            if len(non_null) != len(vals):
                parts.append(f"{col} IS NULL")
            where.append("(" + (" OR ".join(parts) or "0") + ")")

        if release is not None:
            where.append("release=?")
            args.append(release)
        if split is not None:
            where.append("split=?")
            args.append(split)
        if states is not None:
            _in("state", states)
        if keys is not None:
            _in("key", keys)
        if labels is not None:
            _in("label", labels)
        if verify is not None:
            _in("verify", verify)
        if error_codes is not None:
            _in("error_code", error_codes)
        sql = "SELECT * FROM clips"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order}"
        for r in self._db.execute(sql, args):
            yield _to_row(r)

    def get(self, release: str, split: str, key: str) -> ClipRow | None:
        r = self._db.execute(
            "SELECT * FROM clips WHERE release=? AND split=? AND key=?", (release, split, key)
        ).fetchone()
        return None if r is None else _to_row(r)

    def splits(self) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self._db.execute("SELECT DISTINCT release, split FROM clips ORDER BY 1, 2")
        ]

    def count(self, **filters: Any) -> int:
        return sum(1 for _ in self.clips(**filters))

    def clip_counts(self, *, recount: bool = False) -> list[tuple[Any, ...]]:
        """Clips and bytes per (release, split, label, state, error_code, verify, source).

        Read from the counters the triggers keep (a few hundred rows at 650k clips), or
        counted from every row when ``recount`` is set or the root predates the counters (a
        read-only open cannot add them). Groups with no clips are left out; '' reads as None.
        """
        if recount or not self._has_table("clip_counts"):
            sql = (
                f"SELECT {_count_values('clips')}, COUNT(*), COALESCE(SUM(bytes), 0) FROM clips "
                "GROUP BY " + ", ".join(str(i + 1) for i in range(len(COUNT_KEYS)))
            )
            rows = self._db.execute(sql).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {_COUNT_KEY_SQL}, clips, bytes FROM clip_counts WHERE clips > 0"
            ).fetchall()
        keys = len(COUNT_KEYS)
        return [
            tuple(None if (i < keys and v == "") else v for i, v in enumerate(r))
            for r in sorted(map(tuple, rows))
        ]

    def select(
        self,
        columns: Sequence[str],
        *,
        states: Iterable[str | ClipState] | None = None,
        skip_verified_bad: bool = False,
        order: bool = False,
    ) -> Iterator[tuple[Any, ...]]:
        """Plain tuples of ``columns`` (checked names) of every row, or those in ``states``;
        ``skip_verified_bad`` leaves out rows verify found bad; ``order``: split, label, key.

        For read models that need a few columns of many rows: no ``ClipRow`` per row.
        """
        unknown = set(columns) - set(CLIP_COLUMNS) - set(ID_COLUMNS)
        if unknown or not columns:
            raise ManifestError(f"unknown manifest columns {sorted(unknown) or '(none)'}")
        where: list[str] = []
        args: list[str] = []
        if states is not None:
            values = [s.value if isinstance(s, ClipState) else s for s in states]
            where.append(f"state IN ({','.join('?' * len(values))})" if values else "0")
            args.extend(values)
        if skip_verified_bad:
            where.append("(verify IS NULL OR verify != 'bad')")
        sql = f"SELECT {', '.join(columns)} FROM clips"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if order:
            sql += " ORDER BY split, label, key"
        cur = self._db.execute(sql, args)
        cur.row_factory = None  # type: ignore[assignment]  # tuples, not sqlite3.Row
        return iter(cur)

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Read-only SQL for reports (status, stats)."""
        return self._db.execute(sql, tuple(args))

    # -- shards --------------------------------------------------------------------
    def shard(self, url: str) -> dict[str, Any] | None:
        r = self._db.execute("SELECT * FROM shards WHERE url=?", (url,)).fetchone()
        return None if r is None else dict(r)

    def shards(
        self, *, release: str | None = None, split: str | None = None
    ) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM shards WHERE 1=1", []
        if release is not None:
            sql += " AND release=?"
            args.append(release)
        if split is not None:
            sql += " AND split=?"
            args.append(split)
        return [dict(r) for r in self._db.execute(sql + " ORDER BY url", args)]

    def set_shard(self, url: str, *, count_attempt: bool = False, **fields: Any) -> None:
        with self._db:
            self._set_shard_row(url, count_attempt=count_attempt, **fields)

    def _set_shard_row(self, url: str, *, count_attempt: bool = False, **fields: Any) -> None:
        unknown = set(fields) - set(SHARD_COLUMNS)
        if unknown:
            raise ManifestError(f"unknown shard columns {sorted(unknown)}")
        fields["updated_at"] = time.time()
        self._db.execute("INSERT OR IGNORE INTO shards (url) VALUES (?)", (url,))
        sets = ", ".join(f"{k}=?" for k in fields)
        if count_attempt:
            sets += ", attempts=attempts+1"
        self._db.execute(f"UPDATE shards SET {sets} WHERE url=?", (*fields.values(), url))

    def set_shard_members(self, url: str, members: Iterable[tuple[str, int | None]]) -> None:
        """Record every member (clip key, bytes) a shard was seen to hold, replacing older lists."""
        with self._db:
            self._set_members(url, members)

    def _set_members(self, url: str, members: Iterable[tuple[str, int | None]]) -> None:
        self._db.execute("DELETE FROM shard_members WHERE url=?", (url,))
        self._db.executemany(
            "INSERT OR REPLACE INTO shard_members VALUES (?,?,?)",
            ((url, key, size) for key, size in members),
        )

    def shard_index(self, urls: Iterable[str]) -> dict[str, str]:
        """Clip key -> URL of a listed shard (among ``urls``) that holds it."""
        index: dict[str, str] = {}
        for url in urls:
            for (key,) in self._db.execute("SELECT key FROM shard_members WHERE url=?", (url,)):
                index.setdefault(key, url)
        return index


def _to_row(r: sqlite3.Row) -> ClipRow:
    d = dict(r)
    # ClipRow's items without its __new__'s frame: the work columns, then every other column
    return _clip_row((*map(d.pop, ID_FIELDS), *map(d.get, _WORK_TAIL), d))


_clip_row = partial(tuple.__new__, ClipRow)
