"""Files that a crash leaves whole or absent: hashing, fsync, atomic replace, write checks.

Every module that writes a file a reader must never see half-written (a card, a sidecar, the
manifest's meta copy, an export list) writes a temporary sibling and renames it over the
target. Temporaries under a dataset root end in ``TEMP_SUFFIX``, which ``store/leftovers.py``
sweeps after a killed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import IO, Any

from kinetix.errors import ConfigError

TEMP_SUFFIX = ".kx-part"
CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str], chunk_size: int = CHUNK) -> str:
    """The hex sha256 of a file's bytes, read in ``chunk_size`` pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's bytes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename into it); a platform that cannot is let be: the
    rename itself is still atomic."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_sibling(path: Path) -> Path:
    """``.{name}.kx-part`` beside ``path``: where it is written before the rename."""
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


def write_text_atomic(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to a temporary sibling and rename it over ``path``; a failure removes
    the temporary and raises, leaving ``path`` as it was."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        tmp.write_text(text, encoding=encoding)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class AtomicFile:
    """``open`` a temporary sibling of ``path``; ``commit`` renames it over ``path``, ``discard``
    deletes it. A reader never sees a half-written list or shard."""

    def __init__(self, path: Path, mode: str = "w", **open_kwargs: Any):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.file: IO[Any] = open(self.tmp, mode, **open_kwargs)  # noqa: SIM115 - closed in commit/discard

    def commit(self) -> Path:
        self.file.close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def require_writable(folder: str | os.PathLike[str], name: str, fix: str) -> None:
    """Create ``folder`` and prove a file can be written in it, or raise one clear ConfigError.

    ``name`` is what the message calls the folder (``--root``'s path), ``fix`` what to do
    about it. Checked before any work, so a read-only mount fails before the first byte.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to {name}: {exc.strerror or exc}; {fix}") from None
