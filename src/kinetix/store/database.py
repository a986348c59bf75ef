"""How the manifest's SQLite file is opened, so that it stays correct wherever the root lives.

- **Local filesystem** (ext4, xfs, ...): the writer opens ``ROOT/.kinetix/manifest.sqlite`` in WAL
  mode; readers on the same host open it ``mode=ro`` while it is written.
- **Network filesystem** (nfs, lustre, gpfs, beegfs, cifs, fuse.*): SQLite's WAL "does not work
  over a network filesystem" (its wal-index is host-local shared memory) and SQLite advises against
  several hosts sharing one database file there. So the one writer keeps the *live* database on its
  own local disk (``KINETIX_STATE_DIR``, default ``$TMPDIR/kinetix-UID/live/``) and publishes
  consistent snapshots into ``ROOT/.kinetix/manifest.sqlite``: a backup copy in rollback-journal
  mode, written beside it, fsynced and renamed over it, so the file a reader opens never changes
  in place. Readers on any host open that file ``immutable=1``: no locks, no ``-shm``, no
  ``-journal``. A rerun on the same host continues from its live copy when that is at least as new
  as the published one (``meta.generation``), otherwise from the published one.
- **Read-only mount** (or a root the reader may not write): ``-shm`` cannot be created, so a WAL
  database cannot be opened ``mode=ro``; nothing can be writing it through this mount either
  unless a ``-shm`` is already there, so readers open it ``immutable=1``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from kinetix.durable import fsync_dir, fsync_file
from kinetix.errors import ManifestError
from kinetix.store.filesystem import FilesystemInfo, filesystem_info

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 30.0  # seconds between snapshots of a live manifest while a run writes it


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path.absolute()))}?{query}"


def open_reader(path: Path, fs: FilesystemInfo | None = None) -> sqlite3.Connection:
    """A read-only connection that needs no write access anywhere (see the module docstring)."""
    return sqlite3.connect(reader_uri(path, fs), uri=True, check_same_thread=False)


def reader_uri(path: Path, fs: FilesystemInfo | None = None) -> str:
    """The ``file:`` URI ``open_reader`` opens (for other SQLite clients, e.g. ADBC's)."""
    fs = fs or filesystem_info(path.parent)
    wal, shm = _sidecar(path, "-wal"), _sidecar(path, "-shm")
    immutable = fs.network or (fs.readonly and not shm.exists())
    if immutable and wal.exists() and wal.stat().st_size > 0:
        log.warning(
            "%s has a -wal file left by a run that did not finish; its last changes are not "
            "visible here (rerun the writing command on a writable mount to fold them in)",
            path,
        )
    params = {"mode": "ro", "immutable": "1"} if immutable else {"mode": "ro"}
    return _uri(path, **params)


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def live_path(published: Path) -> Path:
    """Where the writer keeps the live copy of a manifest that lives on a network filesystem."""
    base = os.environ.get("KINETIX_STATE_DIR")
    if base:
        top = Path(base)
    else:
        top = Path(tempfile.gettempdir()) / f"kinetix-{os.getuid()}" / "live"
    digest = hashlib.sha256(str(published.absolute()).encode()).hexdigest()[:16]
    return top / digest / published.name


class Writer:
    """The writer's connection, and (on a network filesystem) the publisher of its snapshots."""

    def __init__(self, path: Path, fs: FilesystemInfo | None = None):
        self.published = path
        self.fs = fs or filesystem_info(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.live = live_path(path) if self.fs.network else path
        if self.fs.network:
            self._adopt()
            log.info(
                "%s is on %s (a network filesystem): the live manifest is %s; snapshots are "
                "published to the root",
                path.parent.parent,
                self.fs.name,
                self.live,
            )
        self.db = sqlite3.connect(self.live, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._published_at = time.monotonic()

    @property
    def publishes(self) -> bool:
        return self.live != self.published

    def _adopt(self) -> None:
        """Continue from the local live copy if this root's and not older, else from the root's."""
        pub = _identity(self.published, immutable=True)
        live = _identity(self.live, immutable=False)
        if pub is not None and live is not None and live[0] == pub[0] and live[1] >= pub[1]:
            return
        _remove_db(self.live)
        self.live.parent.mkdir(parents=True, exist_ok=True)
        if not self.published.exists():
            return
        src = sqlite3.connect(_uri(self.published, mode="ro", immutable="1"), uri=True)
        dst = sqlite3.connect(self.live)
        try:
            src.backup(dst)
        except sqlite3.DatabaseError as exc:
            raise ManifestError(f"{self.published} is not a kinetix manifest: {exc}") from exc
        finally:
            src.close()
            dst.close()

    def ensure_identity(self) -> None:
        """Give a new manifest its ``root_id``; publish it at once so other hosts see the root."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('root_id', ?)", (uuid.uuid4().hex,))
        if self.publishes and not self.published.exists():
            self.publish()

    def maybe_publish(self) -> None:
        if self.publishes and time.monotonic() - self._published_at >= PUBLISH_INTERVAL:
            self.publish()

    def publish(self) -> None:
        """Copy the live database into the root as a new immutable snapshot (atomic rename)."""
        if not self.publishes:
            return
        with self.db:
            row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
            generation = int(row[0]) + 1 if row else 1
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (generation,))
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.published.name}.", suffix=".kx-part", dir=self.published.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            dst = sqlite3.connect(tmp)
            try:
                self.db.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
            fsync_file(tmp)
            os.replace(tmp, self.published)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.published.parent)
        self._published_at = time.monotonic()

    def close(self) -> None:
        try:
            if self.publishes:
                self.publish()
        finally:
            self.db.close()


def _identity(path: Path, *, immutable: bool) -> tuple[str, int] | None:
    """(root_id, generation) of a manifest file, or None when absent or unreadable."""
    if not path.exists():
        return None
    params = {"mode": "ro", "immutable": "1"} if immutable else {"mode": "ro"}
    try:
        db = sqlite3.connect(_uri(path, **params), uri=True)
        try:
            rows = dict(
                db.execute("SELECT key, value FROM meta WHERE key IN ('root_id', 'generation')")
            )
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None
    if "root_id" not in rows:
        return None
    return str(rows["root_id"]), int(rows.get("generation") or 0)


def _remove_db(path: Path) -> None:
    for p in (path, _sidecar(path, "-wal"), _sidecar(path, "-shm"), _sidecar(path, "-journal")):
        p.unlink(missing_ok=True)
