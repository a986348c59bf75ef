"""The small protocol every clip source implements (CVDF shards, YouTube, a local folder).

The parent plans tasks from manifest rows that are missing, an executor runs
``Source.run`` in workers, and the parent applies each ``TaskResult`` to the manifest.
A CVDF task covers one shard (many clips); a YouTube task covers one clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kinetix.store.manifest import ClipRow, ClipUpdate


class ClipSpan(Protocol):
    """What a source plans from: a manifest row (``ClipRow``) or the download job's lean row."""

    @property
    def release(self) -> str: ...
    @property
    def split(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def youtube_id(self) -> str: ...
    @property
    def time_start(self) -> int: ...
    @property
    def time_end(self) -> int: ...
    @property
    def label(self) -> str | None: ...


@dataclass(frozen=True)
class TaskResult:
    """What a worker hands back: clip updates, shard bookkeeping and counters."""

    updates: Sequence[ClipUpdate] = ()
    shard_url: str | None = None
    shard_fields: dict[str, Any] = field(default_factory=dict)
    shard_members: Sequence[tuple[str, int | None]] = ()  # (clip key, bytes) the shard held
    bytes_transferred: int = 0
    error: str | None = None  # one-line message for the user when the whole task failed
    error_code: str | None = None  # ErrorCode value of ``error``


class Source(Protocol):
    """A place clips come from."""

    name: str

    def plan(self, rows: Sequence[ClipRow]) -> list[Any]:
        """Group the missing clips this source can provide into picklable tasks."""
        ...

    def run(self, task: Any) -> TaskResult:
        """Fetch one task in a worker; never raise for expected failures."""
        ...
