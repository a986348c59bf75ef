"""WebDataset shards ``OUT/{split}-000000.tar`` of ``{key}.mp4``, ``{key}.json``, ``{key}.cls``.

Written with the standard library's tarfile (the ``webdataset`` package is only needed to read
them). Members carry fixed owners and times, so the same clips in the same order give
byte-identical shards; each shard appears atomically (temporary name, then rename).
"""

from __future__ import annotations

import glob
import io
import json
import logging
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinetix.errors import ConfigError
from kinetix.executors import Executor, TaskKind, run_tasks
from kinetix.export.atomic import AtomicFile
from kinetix.export.config import ShardSize
from kinetix.export.records import ExportRecord, WriterBase

log = logging.getLogger(__name__)

_BLOCK = 512
_STALE = re.compile(r"^(?P<split>.+)-(?P<n>\d{6})\.tar$")


def _padded(size: int) -> int:
    return _BLOCK + -(-size // _BLOCK) * _BLOCK  # header + data rounded up to whole blocks


@dataclass(frozen=True)
class ShardMember:
    """One clip of a shard: its key, the file to pack, and the small members beside it."""

    key: str
    media: str
    meta: bytes
    label: bytes


@dataclass(frozen=True)
class ShardPlan:
    """One shard to write, decided by the parent; any worker can write it (``write_shard``)."""

    path: str
    members: tuple[ShardMember, ...]


def write_shard(plan: ShardPlan) -> dict[str, Any]:
    """Write one shard atomically (temporary name, then rename); its name, clips and bytes."""
    file = AtomicFile(Path(plan.path), "wb")
    try:
        with tarfile.open(fileobj=file.file, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for m in plan.members:
                video = Path(m.media).read_bytes()
                for suffix, data in (("mp4", video), ("json", m.meta), ("cls", m.label)):
                    _add(tar, f"{m.key}.{suffix}", data)
    except BaseException:
        file.discard()
        raise
    path = file.commit()
    return {"name": path.name, "clips": len(plan.members), "bytes": path.stat().st_size}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # fixed, so shards are reproducible
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


class ShardWriter(WriterBase):
    """The shards of one split; a new shard starts when ``shard_size`` would be exceeded.

    The parent decides which clips go in which shard (sizes come from the files' lengths), so
    the shards are the same whether each is written here, as soon as it is full, or by the
    workers of ``executor`` (``--executor``), all of them at ``close``.
    """

    def __init__(
        self,
        out: Path,
        split: str,
        shard_size: ShardSize | None = None,
        executor: Executor | None = None,
    ):
        self.out = out
        self.split = split
        self.shard_size = shard_size or ShardSize()
        self.executor = executor
        self.count = 0
        self.shards: list[dict[str, Any]] = []  # name, clips, bytes of every finished shard
        self._plans: list[ShardPlan] = []  # full shards the executor writes at close
        self._members: list[ShardMember] = []
        self._planned = 0
        self._clips = 0
        self._bytes = 0

    @property
    def pattern(self) -> str:
        """The brace pattern ``webdataset.WebDataset`` expands to every shard of the split."""
        last = max(len(self.shards) - 1, 0)
        return str(self.out / f"{self.split}-{{000000..{last:06d}}}.tar")

    def write(self, record: ExportRecord) -> None:
        key = record.key
        if "." in key:  # webdataset splits member names at the first dot
            raise ConfigError(f"clip key {key!r} contains a dot; WebDataset would split it there")
        if record.kind != "videos":
            raise ConfigError("WebDataset export packs video files; export a videos root")
        meta = json.dumps(record.metadata(), sort_keys=True).encode("utf-8")
        label = str(record.label_index).encode("ascii")
        video = record.media.stat().st_size
        size = _padded(video) + _padded(len(meta)) + _padded(len(label))
        if self._members and self._full(size):
            self._finish()
        self._members.append(ShardMember(key, str(record.media), meta, label))
        self._clips += 1
        self._bytes += size
        self.count += 1

    def _full(self, incoming: int) -> bool:
        limit = self.shard_size
        if limit.clips is not None and self._clips >= limit.clips:
            return True
        return limit.bytes is not None and self._bytes + incoming > limit.bytes

    def _finish(self) -> None:
        name = f"{self.split}-{self._planned:06d}.tar"
        plan = ShardPlan(str(self.out / name), tuple(self._members))
        self._planned += 1
        self._members, self._clips, self._bytes = [], 0, 0
        if self.executor is None:
            self.shards.append(write_shard(plan))
        else:
            self._plans.append(plan)

    def close(self) -> None:
        if self._members:
            self._finish()
        if self._plans and self.executor is not None:
            run_tasks(
                self._plans, write_shard, self.executor,
                on_result=self.shards.append, kind=TaskKind.IO,
            )  # fmt: skip
            self._plans = []
            self.shards.sort(key=lambda shard: shard["name"])
        self._remove_stale()
        index = {
            "split": self.split, "clips": self.count, "pattern": self.pattern,
            "shards": self.shards,
        }  # fmt: skip
        out = AtomicFile(self.out / f"{self.split}-index.json", "w", encoding="utf-8")
        json.dump(index, out.file, indent=1)
        out.commit()

    def abort(self) -> None:
        self._members, self._plans = [], []  # nothing half-written: each shard is atomic

    def _remove_stale(self) -> None:
        """Shards of an earlier, longer export would be picked up by a brace pattern or glob."""
        for path in sorted(self.out.glob(f"{glob.escape(self.split)}-*.tar")):
            m = _STALE.match(path.name)
            if m and m["split"] == self.split and int(m["n"]) >= len(self.shards):
                path.unlink()
                log.info("removed %s, left from an earlier export with more shards", path)
