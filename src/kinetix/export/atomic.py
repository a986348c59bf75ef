"""Files that appear whole or not at all: written under a temporary name, renamed on commit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


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
