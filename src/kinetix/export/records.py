"""What every writer receives: one usable clip with its class index and where its media is."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kinetix.store.manifest import ClipRow


@dataclass(frozen=True)
class ExportRecord:
    """One clip to export.

    ``relpath`` is ``{split}/{label_folder}/{name}`` under ``tree`` (the dataset root, or a link
    tree made for the export); ``media`` is the file (videos) or frame folder (frames).
    """

    row: ClipRow
    label_index: int  # -1 for unlabelled clips
    kind: str  # videos | frames
    tree: Path
    relpath: str

    @property
    def key(self) -> str:
        return self.row.key

    @property
    def split(self) -> str:
        return self.row.split

    @property
    def media(self) -> Path:
        return self.tree / self.relpath

    @property
    def num_frames(self) -> int | None:
        n = self.row.values.get("num_frames")
        return None if n is None else int(n)

    def under_split(self) -> str:
        """The path relative to the split folder (what mmaction2/PaddleVideo's prefix points at)."""
        return under_split(self.split, self.relpath)

    def moved(self, tree: Path, relpath: str) -> ExportRecord:
        return replace(self, tree=tree, relpath=relpath)

    def metadata(self) -> dict[str, Any]:
        """The clip's facts as stored next to it in a shard (``{key}.json``)."""
        v = self.row.values
        meta: dict[str, Any] = {
            "key": self.key, "release": self.row.release, "split": self.split,
            "label": self.row.label, "label_index": self.label_index,
            "youtube_id": self.row.youtube_id, "time_start": self.row.time_start,
            "time_end": self.row.time_end,
        }  # fmt: skip
        for col in ("source", "fps", "num_frames", "width", "height", "duration", "trim",
                    "start_offset", "codec", "has_audio", "verify", "sha256"):  # fmt: skip
            if v.get(col) is not None:
                meta[col] = v[col]
        if "has_audio" in meta:
            meta["has_audio"] = bool(meta["has_audio"])
        return meta


def under_split(split: str, relpath: str) -> str:
    """``relpath`` without its leading ``{split}/`` (kept whole when it has none)."""
    head, sep, tail = relpath.partition("/")
    return tail if sep and head == split else relpath


class Writer(Protocol):
    """The shape every exporter shares (as img2dataset's writers): write rows, then close."""

    def write(self, record: ExportRecord) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Writer: ...

    def __exit__(self, *exc: object) -> None: ...


_W = TypeVar("_W", bound="OutputBase")


class OutputBase:
    """Context-manager plumbing; ``abort`` drops partial output when the export fails."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Called instead of ``close`` when the export failed; keeps older output intact."""

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class WriterBase(OutputBase):
    """An output written one ``ExportRecord`` at a time."""

    def write(self, record: ExportRecord) -> None:
        raise NotImplementedError
