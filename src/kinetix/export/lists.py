"""Annotation lists as mmaction2, PaddleVideo and SlowFast/pytorchvideo read them.

Their loaders split each line on whitespace (SlowFast on exactly one space), so paths with
spaces are refused with a way out (``--link-dir``) rather than written broken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinetix.errors import ConfigError
from kinetix.export.atomic import AtomicFile
from kinetix.export.records import ExportRecord, WriterBase


@dataclass(frozen=True)
class ListFormat:
    """How one consumer wants its list: line shape, path base and file name."""

    name: str  # consumer, for messages
    base: str  # "split": paths under ROOT/{split} (a per-split prefix); "root": under ROOT
    frames: bool  # rawframes list: "dir num_frames label"
    json: bool = False  # mmaction2's json annotation list instead of text lines
    dir_suffix: str = ""  # appended to frame folder names (PaddleVideo keeps ".mp4")
    file_template: str = "{split}.txt"

    def file_name(self, release: str, split: str) -> str:
        return self.file_template.format(dataset=dataset_name(release), split=split)


def dataset_name(release: str) -> str:
    """mmaction2's name of a release: ``kinetics400`` ... ``kinetics700_2020``."""
    return "kinetics" + release.lstrip("k").replace("-", "_")


def list_format(fmt: str, kind: str) -> ListFormat:
    """The list shape for export format ``fmt`` on a root of ``kind`` (videos | frames)."""
    frames = kind == "frames"
    what = "rawframes" if frames else "videos"
    if fmt == "mmaction":
        return ListFormat(
            "mmaction2", "split", frames, file_template=f"{{dataset}}_{{split}}_list_{what}.txt"
        )
    if fmt == "mmaction-json":
        return ListFormat(
            "mmaction2",
            "split",
            frames,
            json=True,
            file_template=f"{{dataset}}_{{split}}_list_{what}.json",
        )
    if fmt == "paddle":
        # PaddleVideo's extract_rawframes.py names each frame folder after its video file
        return ListFormat(
            "PaddleVideo",
            "split",
            frames,
            dir_suffix=".mp4" if frames else "",
            file_template="{split}_frames.list" if frames else "{split}.list",
        )
    if fmt == "slowfast":
        if frames:
            raise ConfigError(
                "SlowFast's Kinetics loader reads videos; export a videos root, or use "
                "--format mmaction for this frames root"
            )
        # one PATH_PREFIX serves every split's csv, so paths start at the root
        return ListFormat("SlowFast", "root", False, file_template="{split}.csv")
    raise ConfigError(f"{fmt!r} is not a list format")


class ListWriter(WriterBase):
    """One list file for one split, written atomically on ``close``."""

    def __init__(self, path: Path, fmt: ListFormat, *, absolute: bool = False):
        self.path = path
        self.format = fmt
        self.absolute = absolute
        self.count = 0
        self._file = AtomicFile(path, "w", encoding="utf-8", newline="\n")
        self._items: list[dict[str, Any]] = []

    def entry_path(self, record: ExportRecord) -> str:
        if self.absolute:
            path = str(record.media)
        elif self.format.base == "split":
            path = record.under_split()
        else:
            path = record.relpath
        if self.format.dir_suffix and not path.endswith(self.format.dir_suffix):
            path += self.format.dir_suffix
        return path

    def write(self, record: ExportRecord) -> None:
        path = self.entry_path(record)
        label = record.label_index
        if self.format.frames and record.num_frames is None:
            raise ConfigError(
                f"{record.relpath} has no num_frames in the frames manifest; "
                "rerun 'kinetix frames' on it"
            )
        if self.format.json:
            if self.format.frames:
                item = {"frame_dir": path, "total_frames": record.num_frames, "label": [label]}
            else:
                item = {"filename": path, "label": [label]}
            self._items.append(item)
        else:
            if any(c.isspace() for c in path):
                raise ConfigError(
                    f"{path!r} contains whitespace, which {self.format.name} splits lines on; "
                    "pass --link-dir DIR to list links named without spaces, or use a root "
                    "downloaded with --layout underscore"
                )
            fields = [path, str(label)]
            if self.format.frames:
                fields.insert(1, str(record.num_frames))
            self._file.file.write(" ".join(fields) + "\n")
        self.count += 1

    def close(self) -> None:
        if self.format.json:
            json.dump(self._items, self._file.file, indent=1)
            self._file.file.write("\n")
        self._file.commit()

    def abort(self) -> None:
        self._file.discard()
