"""Annotation lists as mmaction2, PaddleVideo and SlowFast/pytorchvideo read them.

Their loaders split each line on whitespace (SlowFast on exactly one space), so paths with
spaces are refused with a way out (``--link-dir``) rather than written broken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from kinetix.errors import ConfigError
from kinetix.export.atomic import AtomicFile
from kinetix.export.records import ExportRecord, WriterBase
from kinetix.store.usable import list_tail_sql

WHITESPACE = re.compile(r"\s")  # what str.split() splits on


def has_whitespace(text: str) -> bool:
    """``WHITESPACE.search(text)``, ~7x faster: ``str.split`` finds the same characters.

    Between two NULs (in no path) any whitespace run splits the text in two.
    """
    return len(("\0" + text + "\0").split()) > 1


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

    def _entry_paths(self, tree: Path, split: str, relpaths: Sequence[str]) -> list[str]:
        if self.absolute:
            base = str(tree).rstrip("/") + "/"
            paths = [base + rel for rel in relpaths]
        elif self.format.base == "split":
            prefix = split + "/"  # what under_split strips
            n = len(prefix)
            joined = "\0".join(relpaths)  # no path holds NUL: one C-speed test for all of them
            if joined.startswith(prefix) and joined.count("\0" + prefix) == len(relpaths) - 1:
                paths = [rel[n:] for rel in relpaths]
            else:
                paths = [rel[n:] if rel.startswith(prefix) else rel for rel in relpaths]
        else:
            paths = list(relpaths)
        suffix = self.format.dir_suffix
        if suffix:
            paths = [p if p.endswith(suffix) else p + suffix for p in paths]
        return paths

    def tail_sql(self) -> str | None:
        """SQL for what follows a row's path on its line: `` {label}\\n`` (`` {n} {label}\\n``).

        Where Python must make the line (no stored integer class index, or num_frames) it is
        ``char(0) || rowid`` instead (the SQL is ``store.usable.list_tail_sql``). None when
        lines are not path + tail (json, frame folders with a suffix): those rows go through
        ``write_batch``.
        """
        if self.format.json or self.format.dir_suffix:
            return None
        return list_tail_sql(self.format.frames)

    def write_tails(self, tree: Path, split: str, rows: Sequence[tuple[str, str]]) -> bool:
        """Write (relpath, ``tail_sql``) rows whose paths have no whitespace (the caller checked).

        The lines are made on the joined text, not per row: with no newline inside a path,
        every line starts after a newline. False, and nothing written, when a tail is one
        Python must make (``char(0)``).
        """
        text = "".join(chain.from_iterable(rows))
        if "\0" in text:
            return False
        if self.absolute:
            base = str(tree).rstrip("/") + "/"
            text = base + text.replace("\n", "\n" + base)[: -len(base)] if text else ""
        elif self.format.base == "split":
            prefix = split + "/"  # what under_split strips, once per line
            text = text.replace("\n" + prefix, "\n")
            if text.startswith(prefix):
                text = text[len(prefix) :]
        self._file.file.write(text)
        self.count += len(rows)
        return True

    def write(self, record: ExportRecord) -> None:
        self.write_batch(record.tree, record.split, [(record.relpath, record.label_index,
                                                      record.num_frames)])  # fmt: skip

    def write_batch(
        self,
        tree: Path,
        split: str,
        entries: Sequence[tuple[str, int, int | None]],
        *,
        checked: bool = False,
    ) -> None:
        """Write (relpath under ``tree``, class index, num_frames) entries of one split.

        ``checked``: the caller has refused paths with whitespace already (text lists).
        """
        if self.format.json:
            self._check_frames(entries)
            paths = self._entry_paths(tree, split, [rel for rel, _, _ in entries])
            for path, (_, label, n) in zip(paths, entries):
                if self.format.frames:
                    item = {"frame_dir": path, "total_frames": n, "label": [label]}
                else:
                    item = {"filename": path, "label": [label]}
                self._items.append(item)
        else:
            self._file.file.write("".join(self.lines(tree, split, entries, checked=checked)))
        self.count += len(entries)

    def lines(
        self,
        tree: Path,
        split: str,
        entries: Sequence[tuple[str, int, int | None]],
        *,
        checked: bool = False,
    ) -> list[str]:
        """The text lines of (relpath, class index, num_frames) entries.

        ``checked``: the caller has refused paths with whitespace already.
        """
        self._check_frames(entries)
        paths = self._entry_paths(tree, split, [rel for rel, _, _ in entries])
        if not checked and has_whitespace("\0".join(paths)):
            path = next(p for p in paths if WHITESPACE.search(p))
            raise ConfigError(
                f"{path!r} contains whitespace, which {self.format.name} splits lines "
                "on; pass --link-dir DIR to list links named without spaces, or use a "
                "root downloaded with --layout underscore"
            )
        if self.format.frames:
            return [f"{p} {n} {label}\n" for p, (_, label, n) in zip(paths, entries)]
        return [f"{p} {label}\n" for p, (_, label, _) in zip(paths, entries)]

    def _check_frames(self, entries: Sequence[tuple[str, int, int | None]]) -> None:
        if self.format.frames and None in [n for _, _, n in entries]:
            relpath = next(rel for rel, _, n in entries if n is None)
            raise ConfigError(
                f"{relpath} has no num_frames in the frames manifest; rerun 'kinetix frames' on it"
            )

    def close(self) -> None:
        if self.format.json:
            json.dump(self._items, self._file.file, indent=1)
            self._file.file.write("\n")
        self._file.commit()

    def abort(self) -> None:
        self._file.discard()
