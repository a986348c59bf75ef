"""The resume sidecar of a shard download: which byte ranges of the ``.part`` file are final."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_VERSION = 1


@dataclass
class ResumeState:
    """What a rerun needs to continue a shard: the remote identity and the finished byte ranges.

    Ranges are in bytes, not piece numbers, so a rerun with another piece size still reuses
    every finished piece it fully covers.
    """

    url: str
    size: int
    etag: str | None
    done: list[tuple[int, int]] = field(default_factory=list)  # sorted, merged [start, end)

    @property
    def done_bytes(self) -> int:
        return sum(end - start for start, end in self.done)

    def add(self, start: int, end: int) -> None:
        """Record ``[start, end)`` as written, merging it with its neighbours."""
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted([*self.done, (start, end)]):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.done = merged

    def covers(self, start: int, end: int) -> bool:
        return any(lo <= start and end <= hi for lo, hi in self.done)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": _VERSION,
                "url": self.url,
                "size": self.size,
                "etag": self.etag,
                "done": [list(r) for r in self.done],
            }
        )

    def save(self, path: Path) -> None:
        """Write atomically, so a kill mid-write leaves the previous state, never half a file."""
        write_state(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> ResumeState | None:
        """The saved state, or None when there is none or it cannot be trusted."""
        try:
            raw = json.loads(path.read_text())
            if raw.get("version") != _VERSION:
                raise ValueError(f"unknown version {raw.get('version')!r}")
            done = [(int(lo), int(hi)) for lo, hi in raw["done"]]
            return cls(str(raw["url"]), int(raw["size"]), raw.get("etag"), done)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable resume state %s (%s); starting over", path, exc)
            return None


def write_state(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
