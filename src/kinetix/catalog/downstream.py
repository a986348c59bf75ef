"""AVA-Kinetics and Countix: annotation sets on K700-2020 clips, their files and their rows.

Both are published by DeepMind beside K700-2020, one tarball each under the CVDF
``700_2020/annotations/`` folder, one CSV per split inside:

=================  ===============================================  ==========================
release            CVDF tarball                                     members (any folder)
=================  ===============================================  ==========================
``ava-kinetics``   ``700_2020/annotations/ava_kinetics_v1_0.tar.gz``  ``kinetics_{split}_v1.0.csv``
``countix``        ``700_2020/annotations/countix.tar.gz``            ``countix_{split}.csv``
=================  ===============================================  ==========================

Row shapes, as in the real files:

- Countix: a header ``video_id,class,kinetics_start,kinetics_end,repetition_start,
  repetition_end,count``; the test file has no ``class`` column. ``kinetics_start/end`` name
  the K700 clip (whole seconds), the repetition span is in seconds of the video.
- AVA-Kinetics: no header. Test rows are ``youtube_id,timestamp``; train/val rows are
  ``youtube_id,timestamp,x1,y1,x2,y2,action_id`` (the 7 columns mmaction2's
  ``tools/data/ava_kinetics`` scripts read), optionally with an 8th ``person_id`` column as
  in AVA itself. Boxes are normalised to [0, 1]; a keyframe has one row per box and action.

Two kinds of bad row. A row that does not parse (wrong column count, a word where a number
belongs) raises ``AnnotationError`` naming the file, line and column: the file is not what
it claims to be. A row that parses but cannot be right (a box outside [0, 1], a repetition
span outside its clip, a count <= 0, an action id outside 1..80) is a ``RejectedRow``: kept
out of the rows, reported with its file, line, column and text, never clamped.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, NamedTuple

from kinetix.catalog.releases import normalise_split
from kinetix.errors import AnnotationError, ConfigError

AVA_NUM_CLASSES = 80  # AVA v2.2 action ids are 1..80
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass(frozen=True)
class DownstreamRelease:
    """An annotation set built on the clips of a Kinetics release (``base``)."""

    name: str  # ava-kinetics, countix
    title: str
    base: str  # the Kinetics release whose clips the rows annotate
    archive: str  # the tarball holding every split, path under the CVDF base
    members: dict[str, str]  # split -> member file name inside the tarball (any folder)
    splits: tuple[str, ...] = ("train", "val", "test")

    def member(self, split: str) -> str:
        return self.members[self.check_split(split)]

    def check_split(self, split: str) -> str:
        normalised = normalise_split(split)
        if normalised not in self.splits:
            raise ConfigError(
                f"{self.name} has no split {split!r}; valid splits are {', '.join(self.splits)}"
            )
        return normalised


DOWNSTREAM: dict[str, DownstreamRelease] = {
    r.name: r
    for r in (
        DownstreamRelease(
            name="ava-kinetics",
            title="AVA-Kinetics v1.0 (Kinetics part)",
            base="k700-2020",
            archive="700_2020/annotations/ava_kinetics_v1_0.tar.gz",
            members={s: f"kinetics_{s}_v1.0.csv" for s in ("train", "val", "test")},
        ),
        DownstreamRelease(
            name="countix",
            title="Countix",
            base="k700-2020",
            archive="700_2020/annotations/countix.tar.gz",
            members={s: f"countix_{s}.csv" for s in ("train", "val", "test")},
        ),
    )
}

_ALIASES = {
    "ava_kinetics": "ava-kinetics", "avakinetics": "ava-kinetics",
    "ava-kinetics-v1.0": "ava-kinetics", "ava_kinetics_v1_0": "ava-kinetics",
}  # fmt: skip


def downstream_name(name: str) -> str | None:
    """The downstream release ``name`` spells (``ava_kinetics`` -> ``ava-kinetics``), or None."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in DOWNSTREAM else None


def get_downstream(name: str) -> DownstreamRelease:
    key = downstream_name(name)
    if key is None:
        raise ConfigError(
            f"unknown annotation set {name!r}; valid ones are {', '.join(DOWNSTREAM)}"
        )
    return DOWNSTREAM[key]


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountixRow:
    """One Countix row: a repetition segment and its count inside a K700 clip."""

    line: int  # 1-based line in the file (the header is line 1)
    youtube_id: str
    time_start: int  # kinetics_start: the K700 clip, whole seconds of the video
    time_end: int
    repetition_start: float  # seconds of the video, not of the clip
    repetition_end: float
    count: int
    label: str | None  # None in the test file (no class column)


class AvaRow(NamedTuple):
    """One AVA-Kinetics row: a keyframe, and on train/val one person box with one action."""

    line: int  # 1-based line in the file (no header)
    youtube_id: str
    timestamp: float  # seconds of the video
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 in [0, 1]
    action: int | None = None  # AVA action id, 1..80
    person: int | None = None  # person id, when the file has the 8th column


@dataclass(frozen=True)
class RejectedRow:
    """A row that parsed but cannot be right; kept out, reported as it was."""

    path: str
    line: int
    column: str
    reason: str  # stable code: box_outside_unit, span_outside_clip, count_not_positive ...
    message: str
    text: str  # the row as it is in the file

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.column}: {self.message} (row {self.text!r})"


@dataclass(frozen=True)
class DownstreamAnnotations:
    """The rows of one split of a downstream release, and the rows kept out."""

    release: str
    split: str
    path: Path
    rows: list[CountixRow] | list[AvaRow]
    rejected: list[RejectedRow]

    @property
    def keyframes(self) -> int:
        """Distinct (youtube_id, timestamp) of AVA rows; rows for Countix."""
        rows = self.rows
        if not rows or isinstance(rows[0], CountixRow):
            return len(rows)
        return len({(r.youtube_id, r.timestamp) for r in rows if isinstance(r, AvaRow)})


# --- reading ----------------------------------------------------------------------------------

COUNTIX_COLUMNS = (
    "video_id", "class", "kinetics_start", "kinetics_end",
    "repetition_start", "repetition_end", "count",
)  # fmt: skip
AVA_COLUMNS = ("youtube_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "person_id")


class _Malformed(Exception):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


class _Reject(Exception):
    def __init__(self, column: str, reason: str, message: str):
        super().__init__(message)
        self.column, self.reason = column, reason


def read_downstream(
    path: str | Path, release: str | DownstreamRelease, split: str
) -> DownstreamAnnotations:
    """Read one split's CSV of a downstream release; see the module docstring for bad rows."""
    rel = release if isinstance(release, DownstreamRelease) else get_downstream(release)
    split = rel.check_split(split)
    path = Path(path)
    rows: list[CountixRow] | list[AvaRow]
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            if rel.name == "countix":
                rows, rejected = _read_countix(stream, str(path))
            else:
                rows, rejected = _read_ava(stream, str(path))
    except OSError as exc:
        raise AnnotationError(
            f"cannot read annotation file: {exc.strerror}", path=str(path)
        ) from exc
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"is not UTF-8 text ({exc.reason})", path=str(path)) from exc
    return DownstreamAnnotations(rel.name, split, path, rows, rejected)


def _youtube_id(raw: str, column: str) -> str:
    if len(raw) != 11 or raw.strip(_ID_CHARS):
        raise _Malformed(column, f"expected an 11-character youtube id, got {raw!r}")
    return raw


def _integer(raw: str, column: str) -> int:
    text = raw.strip()
    if text.startswith("-"):
        digits = text[1:]
    else:
        digits = text
    if not (digits.isascii() and digits.isdigit()):
        raise _Malformed(column, f"expected a whole number, got {raw!r}")
    return int(text)


def _number(raw: str, column: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _Malformed(column, f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise _Malformed(column, f"expected a finite number, got {raw!r}")
    return value


def _lines(stream: IO[str], name: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, text, fields) of every non-blank line."""
    reader = csv.reader(stream)
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            yield reader.line_num, ",".join(fields), fields
    except csv.Error as exc:
        raise AnnotationError(f"not valid CSV: {exc}", path=name, line=reader.line_num) from exc


def _read_countix(stream: IO[str], name: str) -> tuple[list[CountixRow], list[RejectedRow]]:
    lines = _lines(stream, name)
    first = next(lines, None)
    if first is None:
        raise AnnotationError("file is empty", path=name)
    _, header_text, header = first
    columns = [c.strip().lower() for c in header]
    required = set(COUNTIX_COLUMNS) - {"class"}
    if (
        set(columns) - set(COUNTIX_COLUMNS)
        or required - set(columns)
        or len(set(columns)) != len(columns)
    ):
        raise AnnotationError(
            f"expected a Countix header of {','.join(COUNTIX_COLUMNS)} (class optional), got "
            f"{header_text[:100]!r}",
            path=name,
            line=1,
        )
    at = {c: i for i, c in enumerate(columns)}
    i_label = at.get("class")
    rows: list[CountixRow] = []
    rejected: list[RejectedRow] = []
    number, text = 1, header_text
    try:
        for number, text, row in lines:
            if len(row) != len(columns):
                raise _Malformed(
                    columns[min(len(row), len(columns)) - 1] if row else columns[0],
                    f"expected {len(columns)} columns ({','.join(columns)}), got {len(row)}",
                )
            try:
                rows.append(_countix_row(number, row, at, i_label))
            except _Reject as exc:
                rejected.append(RejectedRow(name, number, exc.column, exc.reason, str(exc), text))
    except _Malformed as exc:
        raise AnnotationError(f"column {exc.column}: {exc}", path=name, line=number) from None
    return rows, rejected


def _countix_row(
    number: int, row: list[str], at: dict[str, int], i_label: int | None
) -> CountixRow:
    youtube_id = _youtube_id(row[at["video_id"]], "video_id")
    start = _integer(row[at["kinetics_start"]], "kinetics_start")
    end = _integer(row[at["kinetics_end"]], "kinetics_end")
    rep_start = _number(row[at["repetition_start"]], "repetition_start")
    rep_end = _number(row[at["repetition_end"]], "repetition_end")
    count = _integer(row[at["count"]], "count")
    if start < 0 or end <= start:
        raise _Reject(
            "kinetics_end", "bad_clip", f"clip [{start}, {end}) is empty or starts before 0"
        )
    if count <= 0:
        raise _Reject("count", "count_not_positive", f"count must be > 0, got {count}")
    if rep_end <= rep_start:
        raise _Reject(
            "repetition_end",
            "empty_span",
            f"repetition span {rep_start:g}-{rep_end:g} s is empty",
        )
    # Strict: a span that overruns its clip by a fraction of a frame is still not inside it
    # (the real val file has one, 16.000339 s in a clip ending at 16 s); nothing is clamped.
    if rep_start < start or rep_end > end:
        column = "repetition_start" if rep_start < start else "repetition_end"
        raise _Reject(
            column,
            "span_outside_clip",
            f"repetition span {rep_start:g}-{rep_end:g} s is outside its clip [{start}, {end})",
        )
    label = None if i_label is None else (row[i_label] or None)
    return CountixRow(number, youtube_id, start, end, rep_start, rep_end, count, label)


def _read_ava(stream: IO[str], name: str) -> tuple[list[AvaRow], list[RejectedRow]]:
    rows: list[AvaRow] = []
    rejected: list[RejectedRow] = []
    width: int | None = None
    number = 0
    try:
        for number, text, row in _lines(stream, name):
            if width is None:
                if len(row) not in (2, 7, 8):
                    raise _Malformed(
                        "youtube_id",
                        "expected AVA-Kinetics rows of 2 columns (youtube_id,timestamp), 7 "
                        "(…,x1,y1,x2,y2,action_id) or 8 (…,person_id); got "
                        f"{len(row)}: {text[:80]!r}",
                    )
                width = len(row)
            elif len(row) != width:
                raise _Malformed(
                    AVA_COLUMNS[min(len(row), width) - 1],
                    f"expected {width} columns ({','.join(AVA_COLUMNS[:width])}) like line "
                    f"1, got {len(row)}",
                )
            try:
                rows.append(_ava_row(number, row))
            except _Reject as exc:
                rejected.append(RejectedRow(name, number, exc.column, exc.reason, str(exc), text))
    except _Malformed as exc:
        raise AnnotationError(f"column {exc.column}: {exc}", path=name, line=number) from None
    if width is None:
        raise AnnotationError("file is empty", path=name)
    return rows, rejected


def _ava_row(number: int, row: list[str]) -> AvaRow:
    youtube_id = _youtube_id(row[0], "youtube_id")
    timestamp = _number(row[1], "timestamp")
    if timestamp < 0:
        raise _Reject("timestamp", "negative_timestamp", f"timestamp {timestamp:g} s is < 0")
    if len(row) == 2:
        return AvaRow(number, youtube_id, timestamp)
    box = tuple(_number(row[i], AVA_COLUMNS[i]) for i in range(2, 6))
    for i, value in enumerate(box):
        if not 0.0 <= value <= 1.0:
            raise _Reject(
                AVA_COLUMNS[2 + i],
                "box_outside_unit",
                f"{AVA_COLUMNS[2 + i]} = {value:g} is outside [0, 1]",
            )
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise _Reject("x2" if x2 <= x1 else "y2", "empty_box", f"box {box} has no area")
    action = _integer(row[6], "action_id")
    if not 1 <= action <= AVA_NUM_CLASSES:
        raise _Reject(
            "action_id",
            "action_out_of_range",
            f"action_id {action} is not an AVA action (1..{AVA_NUM_CLASSES})",
        )
    person = _integer(row[7], "person_id") if len(row) == 8 else None
    return AvaRow(number, youtube_id, timestamp, (x1, y1, x2, y2), action, person)


# AVA v2.2 action types by id range (the official action list's label_type)
AVA_ACTION_TYPES = (
    (range(1, 15), "PERSON_MOVEMENT"),
    (range(15, 64), "OBJECT_MANIPULATION"),
    (range(64, 81), "PERSON_INTERACTION"),
)


@cache
def ava_actions() -> tuple[str, ...]:
    """The 80 AVA v2.2 action names; action id ``i`` is ``ava_actions()[i - 1]``."""
    text = resources.files("kinetix.catalog").joinpath("label_maps/label_map_ava.txt")
    names = tuple(line for line in text.read_text("utf-8").splitlines() if line.strip())
    assert len(names) == AVA_NUM_CLASSES, "the packaged AVA action list must have 80 names"
    return names


def ava_action_type(action: int) -> str:
    return next(kind for ids, kind in AVA_ACTION_TYPES if action in ids)


def rejected_reasons(rejected: Iterable[RejectedRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rejected:
        counts[row.reason] = counts.get(row.reason, 0) + 1
    return counts
