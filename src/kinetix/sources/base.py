"""The small protocol every clip source implements (CVDF shards, YouTube, a local folder).

The parent plans tasks from manifest rows that are missing, an executor runs them in workers,
and the parent applies each ``TaskResult`` to the manifest. A CVDF task covers one shard (many
clips); a YouTube task covers one clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kinetix.store.manifest import ClipUpdate
from kinetix.store.rows import RowKey

if TYPE_CHECKING:
    from kinetix.catalog.releases import Release
    from kinetix.config import DownloadConfig
    from kinetix.sources.job import DownloadJob
    from kinetix.store.manifest import Manifest
    from kinetix.store.rows import WorkRow


class ClipSpan(RowKey, Protocol):
    """What a source plans from: a manifest row (``ClipRow``) or the download job's lean row."""

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
    """A place the download job takes clips from; ``download.SOURCES`` maps each ``SourceKind``
    to one (``sources/cvdf_source.py`` ``CvdfSource``, ``sources/youtube`` ``YoutubeSource``).

    The job asks the run's sources in order (``--source auto``: CVDF, then YouTube for what is
    still missing) which of the selected rows each ``wants``; ``fetch`` plans them into tasks
    from the manifest, runs them on the run's executor and applies every result in the parent
    (``sources/job.py``). A new source is one module with these four methods and a map entry.
    """

    name: str

    def serves(self, release: Release) -> bool:
        """Whether this source has clips of ``release`` at all."""
        ...

    def wants(self, row: WorkRow, config: DownloadConfig) -> bool:
        """Whether ``row`` is work for this source in this run."""
        ...

    def pending(self, manifest: Manifest, release: Release, split: str) -> bool:
        """Work an earlier run recorded and did not finish, with no row to show for it."""
        ...

    def fetch(self, job: DownloadJob, rows: Sequence[WorkRow]) -> None:
        """Plan ``rows`` into tasks, run them and record every result."""
        ...
