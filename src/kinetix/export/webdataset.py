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
from pathlib import Path
from typing import Any

from kinetix.errors import ConfigError
from kinetix.export.atomic import AtomicFile
from kinetix.export.config import ShardSize
from kinetix.export.records import ExportRecord, WriterBase

log = logging.getLogger(__name__)

_BLOCK = 512
_STALE = re.compile(r"^(?P<split>.+)-(?P<n>\d{6})\.tar$")


def _padded(size: int) -> int:
    return _BLOCK + -(-size // _BLOCK) * _BLOCK  # header + data rounded up to whole blocks


class ShardWriter(WriterBase):
    """The shards of one split; a new shard starts when ``shard_size`` would be exceeded."""

    def __init__(self, out: Path, split: str, shard_size: ShardSize | None = None):
        self.out = out
        self.split = split
        self.shard_size = shard_size or ShardSize()
        self.count = 0
        self.shards: list[dict[str, Any]] = []  # name, clips, bytes of every finished shard
        self._tar: tarfile.TarFile | None = None
        self._file: AtomicFile | None = None
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
        video = record.media.read_bytes()
        meta = json.dumps(record.metadata(), sort_keys=True).encode("utf-8")
        label = str(record.label_index).encode("ascii")
        size = _padded(len(video)) + _padded(len(meta)) + _padded(len(label))
        if self._tar is not None and self._full(size):
            self._finish()
        if self._tar is None:
            self._start()
        for suffix, data in (("mp4", video), ("json", meta), ("cls", label)):
            self._add(f"{key}.{suffix}", data)
        self._clips += 1
        self._bytes += size
        self.count += 1

    def _full(self, incoming: int) -> bool:
        limit = self.shard_size
        if limit.clips is not None and self._clips >= limit.clips:
            return True
        return limit.bytes is not None and self._bytes + incoming > limit.bytes

    def _start(self) -> None:
        name = f"{self.split}-{len(self.shards):06d}.tar"
        self._file = AtomicFile(self.out / name, "wb")
        # closed in _finish/abort: a shard outlives this call
        self._tar = tarfile.open(  # noqa: SIM115
            fileobj=self._file.file, mode="w", format=tarfile.USTAR_FORMAT
        )
        self._clips = self._bytes = 0

    def _add(self, name: str, data: bytes) -> None:
        assert self._tar is not None
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0  # fixed, so shards are reproducible
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def _finish(self) -> None:
        assert self._tar is not None and self._file is not None
        self._tar.close()
        path = self._file.commit()
        self.shards.append({"name": path.name, "clips": self._clips, "bytes": path.stat().st_size})
        self._tar = self._file = None

    def close(self) -> None:
        if self._tar is not None:
            self._finish()
        self._remove_stale()
        index = {
            "split": self.split, "clips": self.count, "pattern": self.pattern,
            "shards": self.shards,
        }  # fmt: skip
        out = AtomicFile(self.out / f"{self.split}-index.json", "w", encoding="utf-8")
        json.dump(index, out.file, indent=1)
        out.commit()

    def abort(self) -> None:
        if self._tar is not None and self._file is not None:
            self._tar.close()
            self._file.discard()
            self._tar = self._file = None

    def _remove_stale(self) -> None:
        """Shards of an earlier, longer export would be picked up by a brace pattern or glob."""
        for path in sorted(self.out.glob(f"{glob.escape(self.split)}-*.tar")):
            m = _STALE.match(path.name)
            if m and m["split"] == self.split and int(m["n"]) >= len(self.shards):
                path.unlink()
                log.info("removed %s, left from an earlier export with more shards", path)
