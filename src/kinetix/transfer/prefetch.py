"""Shard transfers started before their tasks exist, so the link works while a run plans.

A fresh K700-2020 train run reads 545k annotation rows and registers them before it knows its
shard tasks (6–10 s); the first shards it will fetch are known from the path list alone. Those
start here, into the very ``.part`` files their tasks use, and the task that comes for one
takes the running ``ShardDownload`` over (``adopt``): no byte is fetched twice and nothing
about the task changes. Whatever no task took is aborted when the run ends, its ``.part`` and
resume state kept like any interrupted transfer's. In-process only: a task on another
process (a Dask worker) finds nothing to adopt and resumes from the ``.part`` instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from kinetix.config import TransferConfig
from kinetix.transfer.http import RemoteInfo
from kinetix.transfer.shard import ShardDownload

log = logging.getLogger(__name__)

_lock = threading.Lock()
_started: dict[str, ShardDownload] = {}  # part path -> its running download


def adopt(part_path: str | Path) -> ShardDownload | None:
    """The download started ahead for ``part_path``, now the caller's to finish or abort."""
    with _lock:
        return _started.pop(str(part_path), None)


@contextlib.contextmanager
def head_start(
    shards: Iterable[tuple[str, Path, RemoteInfo | None]], config: TransferConfig
) -> Iterator[int]:
    """Start a ``ShardDownload`` for each (url, part path, what a probe of it said, if one
    was made) for the length of the block.

    Yields how many started. On leaving, the ones no task adopted are aborted (threads joined,
    ``.part`` and ``.state`` kept for resume).
    """
    mine: list[ShardDownload] = []
    try:
        for url, part, info in shards:
            with _lock:
                if str(part) in _started:  # another run in this process has it
                    continue
            download = ShardDownload(url, part, config, info=info)
            try:
                download.start()
            except OSError as exc:  # its task meets the same and says so
                log.debug("no head start for %s: %s", url, exc)
                download.abort()
                continue
            with _lock:
                _started[str(part)] = download
            mine.append(download)
            log.debug("started %s ahead of its task", url)
        yield len(mine)
    finally:
        with _lock:
            left = [d for d in mine if _started.get(str(d.part_path)) is d]
            for download in left:
                del _started[str(download.part_path)]
        for download in left:
            download.cancel()  # every socket shut at once, then joined one by one
        for download in left:
            download.abort()
