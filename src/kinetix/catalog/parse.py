"""One reader for every real Kinetics annotation variant, turning each row into a ``Clip``.

The format is told from the content, never from the file name:

============================  =======================================================
first bytes / line            format
============================  =======================================================
``PK\\x03\\x04``                a DeepMind zip (``kinetics_600_val.zip``); its CSV is read,
                              or its JSON when that is the only annotation member
``{``                         DeepMind JSON keyed by youtube id, float ``segment``
``val:`` (``<split>:``)         CVDF ``600/annotations/val.txt``: ``ls -R`` of the val tars
header with ``youtube_id``    Kinetics CSV (CVDF or DeepMind; with or without ``label``,
                              ``split``, ``is_cc``; quoted or not; LF or CRLF)
header with ``video_id``      Countix (with or without ``class``)
``<id>,<seconds>``            AVA-Kinetics keyframe list (no header)
============================  =======================================================

Anything else, and any row that does not fit its format, raises ``AnnotationError`` naming
the file, the line and what was expected; no row is ever dropped silently.

Countix and AVA-Kinetics are built on Kinetics-700 clips, so their rows become K700 clips
(``release`` defaults to ``k700``) of the split the caller names (their files carry none):

- Countix: ``kinetics_start``/``kinetics_end`` are the K700 segment and ``class`` its label;
  ``extra`` holds ``repetition_start``, ``repetition_end`` (float seconds in the video) and
  ``count``.
- AVA-Kinetics: a row is one annotated keyframe (``timestamp``, float seconds in the video),
  not a segment. The K700 clip holding it is not named in the file, so the clip is the
  10-second window centred on the keyframe's second (``[t-5, t+5)``, shifted to start at 0
  near the beginning of the video) and ``extra["timestamp"]`` keeps the keyframe time; this
  matches the AVA convention of giving a model context around the keyframe.
  ``kinetix.catalog.select.match_keyframes`` swaps the window for the real K700 clip that
  contains the keyframe when the K700 annotations are at hand. ``label`` is ``None``: AVA
  actions are per person box, and this file carries none.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from kinetix.bulk import paused_gc
from kinetix.catalog.clip import Clip
from kinetix.catalog.releases import SPLIT_ALIASES, Release, get_release, normalise_split
from kinetix.errors import AnnotationError, ConfigError

logger = logging.getLogger(__name__)

YOUTUBE_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
YOUTUBE_ID_LENGTH = 11

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split", "is_cc")
_KINETICS_REQUIRED = frozenset({"youtube_id", "time_start", "time_end"})
COUNTIX_COLUMNS = (
    "video_id", "class", "kinetics_start", "kinetics_end",
    "repetition_start", "repetition_end", "count",
)  # fmt: skip
_COUNTIX_REQUIRED = frozenset(COUNTIX_COLUMNS) - {"class"}
AVA_WINDOW = 10  # seconds of context around an AVA-Kinetics keyframe
_DERIVED_RELEASE = "k700"  # Countix and AVA-Kinetics annotate Kinetics-700 videos

_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"
_IS_CC = {"0": False, "1": True}
_MISSING: Any = object()
_INTERNED_LIMIT = 1 << 16  # distinct time values remembered per file
_EXPECTED_FORMATS = (
    "a Kinetics CSV header (label,youtube_id,time_start,time_end,split[,is_cc]), a Countix "
    "header (video_id,class,kinetics_start,...), an AVA-Kinetics row (youtube_id,timestamp), "
    "DeepMind JSON or an 'ls -R' listing starting with '<split>:'"
)


def read_annotations(
    path: str | Path, *, release: str | None = None, split: str | None = None
) -> list[Clip]:
    """Read one annotation file of any real Kinetics variant into ``Clip`` records, in file order.

    ``release`` names the release the clips belong to (Kinetics files do not say; Countix
    and AVA-Kinetics default to ``k700``). ``split`` is required for files without a split
    (Countix, AVA-Kinetics); for files with one it must agree with every row. Splits are
    normalised (``validate`` -> ``val``). Duplicate youtube ids and keys are kept as they are;
    ``kinetix.catalog.stats`` reports them.
    """
    clips: list[Clip] = []
    stream_annotations(path, clips.append, release=release, split=split)
    return clips


def stream_annotations(
    path: str | Path,
    emit: Callable[[Clip], object],
    *,
    release: str | None = None,
    split: str | None = None,
) -> None:
    """Read ``path`` as ``read_annotations`` does, handing each ``Clip`` to ``emit`` as it is read.

    Nothing is kept between rows (except the JSON format, read whole), so a caller that keeps
    little reads a file of any length in flat memory. ``emit`` may refuse a row by raising
    ``RowRefused``: the error then names the file and the row's line, like a parse error.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise AnnotationError(
            f"cannot read annotation file: {exc.strerror}", path=str(path)
        ) from exc
    if magic.startswith(_GZIP_MAGIC):
        raise AnnotationError(
            "is a gzip/tar archive, not an annotation file; extract its CSV first "
            "(or let 'kinetix annotations fetch' do it)",
            path=str(path),
        )
    with paused_gc():
        if magic == _ZIP_MAGIC:
            with _open_zip_member(path, split) as (name, stream):
                _read_stream(stream, name, release, split, emit)
                return
        with path.open(encoding="utf-8-sig", newline="") as stream:
            _read_stream(stream, str(path), release, split, emit)


@contextmanager
def _open_zip_member(path: Path, split: str | None) -> Iterator[tuple[str, IO[str]]]:
    """Open the annotation member of a DeepMind zip as text.

    DeepMind zips hold the same rows as CSV and JSON; the CSV wins because the JSON is keyed
    by youtube id and so loses the rows of videos annotated twice (K600 val: 30,000 CSV rows,
    29,994 JSON entries).
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise AnnotationError(f"corrupt zip archive: {exc}", path=str(path)) from exc
    with archive:
        members = [
            m.filename
            for m in archive.infolist()
            if not m.is_dir()
            and m.filename.lower().endswith((".csv", ".json", ".txt"))
            and "readme" not in m.filename.lower()
        ]
        csvs = [m for m in members if m.lower().endswith(".csv")]
        candidates = csvs or members
        if len(candidates) > 1 and split is not None:
            wanted = normalise_split(split)
            candidates = [m for m in candidates if _split_in_name(m) == wanted]
        if len(candidates) != 1:
            raise AnnotationError(
                f"expected one annotation member (CSV or JSON) for split {split!r}, "
                f"found {candidates or members or 'none'}",
                path=str(path),
            )
        member = candidates[0]
        with archive.open(member) as raw:
            yield f"{path}!{member}", io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _split_in_name(member: str) -> str | None:
    """The split a zip member's name mentions (``kinetics_val.csv`` -> ``val``), if any."""
    stem = member.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    for part in stem.replace("-", "_").split("_"):
        try:
            return normalise_split(part)
        except ConfigError:
            continue
    return None


def _read_stream(
    stream: IO[str],
    name: str,
    release: str | None,
    split: str | None,
    emit: Callable[[Clip], object],
) -> None:
    try:
        first = stream.readline()
        if not first:
            raise AnnotationError("file is empty", path=name)
        head = first.strip()
        if not head:
            raise AnnotationError(
                f"line 1 is blank; expected {_EXPECTED_FORMATS}", path=name, line=1
            )
        if head.startswith(("{", "[")):
            return _RowReader(name, release, split, emit).read_json(first + stream.read())
        if head.endswith(":") and head[:-1].strip().lower() in SPLIT_ALIASES:
            return _RowReader(name, release, split, emit).read_listing(head, stream)
        fields = next(csv.reader([first]))
        columns = [c.strip().lower() for c in fields]
        if "youtube_id" in columns:
            return _RowReader(name, release, split, emit).read_kinetics_csv(columns, stream)
        if "video_id" in columns:
            return _RowReader(name, release or _DERIVED_RELEASE, split, emit).read_countix(
                columns, stream
            )
        if len(fields) == 2 and _is_youtube_id(fields[0]) and _is_seconds(fields[1]):
            return _RowReader(name, release or _DERIVED_RELEASE, split, emit).read_ava(
                first, stream
            )
    except UnicodeDecodeError as exc:
        line = _first_line_not_utf8_in(name)
        raise AnnotationError(f"is not UTF-8 text ({exc.reason})", path=name, line=line) from exc
    except csv.Error as exc:
        raise AnnotationError(f"not valid CSV: {exc}", path=name) from exc
    raise AnnotationError(f"expected {_EXPECTED_FORMATS}; got {head[:80]!r}", path=name, line=1)


def first_line_not_utf8(path: Path) -> int | None:
    """The first line of ``path`` that is not UTF-8 (None: unreadable, or not a plain file).

    Text streams decode in blocks, so the failing line is found again on the error path only.
    """
    try:
        with path.open("rb") as f:
            return _first_bad_line(f)
    except OSError:
        return None


def _first_line_not_utf8_in(name: str) -> int | None:
    """``first_line_not_utf8`` of a plain file or of a zip member named ``archive!member``."""
    archive, bang, member = name.partition("!")
    if not bang:
        return first_line_not_utf8(Path(name))
    try:
        with zipfile.ZipFile(archive) as z, z.open(member) as f:
            return _first_bad_line(f)
    except (OSError, KeyError, zipfile.BadZipFile):
        return None


def _first_bad_line(lines: Iterable[bytes]) -> int | None:
    for number, raw in enumerate(lines, 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def first_line_of_label(
    path: Path, labels: Iterable[str], *, release: str | None, split: str | None
) -> int | None:
    """The line of the first row of ``path`` whose label is one of ``labels`` (any format).

    Reads the file again, so it is for error paths: a label sits in a CSV field, a JSON
    entry, a zip member or an ``ls -R`` block header, and the reader knows which line.
    """
    wanted = frozenset(labels)

    def refuse(clip: Clip) -> None:
        if clip.label in wanted:
            raise RowRefused("found")

    try:
        stream_annotations(path, refuse, release=release, split=split)
    except AnnotationError as exc:
        return exc.line
    return None


def first_line_with(path: Path, text: str) -> int | None:
    """The first line of ``path`` holding ``text`` as a CSV field (or anywhere, for JSON)."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            for number, line in enumerate(f, 1):
                if text in line and (
                    text in (c.strip() for c in next(csv.reader([line]), [])) or "{" in line
                ):
                    return number
    except (OSError, csv.Error):
        return None
    return None


def _is_youtube_id(text: str) -> bool:
    # str.strip with the allowed alphabet leaves "" only when every character is allowed;
    # it runs at C speed, unlike a per-row regex.
    return len(text) == YOUTUBE_ID_LENGTH and not text.strip(YOUTUBE_ID_CHARS)


def _is_seconds(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


class _RowProblem(Exception):
    """What is wrong with one row or entry; the format reader adds file and line."""


class RowRefused(_RowProblem):
    """Raised by a ``stream_annotations`` callback to refuse a row; the reader adds file, line."""


def _bad_id(raw: str) -> _RowProblem:
    return _RowProblem(
        f"youtube_id must be {YOUTUBE_ID_LENGTH} characters from [A-Za-z0-9_-], got {raw!r}"
    )


def _bad_span(start: int, end: int) -> _RowProblem:
    return _RowProblem(f"time_end {end} must be after time_start {start}")


def _seconds(raw: str, column: str) -> int:
    if raw.isascii() and raw.isdigit():
        return int(raw)
    raise _RowProblem(f"{column} must be a whole number of seconds, got {raw!r}")


def _float_seconds(raw: str, column: str) -> float:
    if _is_seconds(raw):
        return float(raw)
    raise _RowProblem(f"{column} must be a number of seconds >= 0, got {raw!r}")


def _width_problem(row: list[str], columns: list[str]) -> _RowProblem:
    return _RowProblem(
        f"expected {len(columns)} columns ({','.join(columns)}), got {len(row)}: "
        f"{','.join(row)[:80]!r}"
    )


class _RowReader:
    """Per-file parsing state: the file's name, what the caller asked for, interned values.

    Labels, splits and times repeat across hundreds of thousands of rows, so each distinct
    string is checked once and every later row reuses the same object: less memory, and a
    dict hit instead of ``int()``/normalisation per row.
    """

    def __init__(
        self, name: str, release: str | None, split: str | None, emit: Callable[[Clip], object]
    ):
        self.name = name
        self.emit = emit
        if release is None:
            raise ConfigError(
                f"{name}: Kinetics annotation files do not say which release they belong to; "
                "pass release= (k400, k600, k700 or k700-2020)"
            )
        self.release: Release = get_release(release)
        self.wanted_split = None if split is None else normalise_split(split)
        self.ints: dict[str, int] = {}
        self.labels: dict[str, str | None] = {"": None}  # an empty label is an unlabelled row
        self.splits: dict[str, str] = {}

    def error(self, line: int | None, problem: _RowProblem | str) -> AnnotationError:
        return AnnotationError(str(problem), path=self.name, line=line)

    # -- values met for the first time ------------------------------------------------------
    def fixed_split(self) -> str:
        """The split for files whose rows carry none (Countix, AVA-Kinetics, split-less CSVs)."""
        splits = ", ".join(self.release.splits)
        if self.wanted_split is None:
            raise ConfigError(f"{self.name} has no split column; pass split= ({splits})")
        if not self.release.has_split(self.wanted_split):
            raise ConfigError(
                f"{self.release.name} has no split {self.wanted_split!r}; valid splits are {splits}"
            )
        return self.wanted_split

    def check_release_split(self, split: str) -> str:
        if not self.release.has_split(split):
            raise _RowProblem(
                f"split {split!r} is not a split of {self.release.name} "
                f"(valid splits are {', '.join(self.release.splits)})"
            )
        return split

    def split_of(self, raw: str) -> str:
        """Normalise a split value, check it is the one asked for, and remember it."""
        try:
            split = normalise_split(raw)
        except ConfigError:
            raise _RowProblem(
                f"split must be train, val/validate, test or holdout_test, got {raw!r}"
            ) from None
        if self.wanted_split is not None and split != self.wanted_split:
            raise _RowProblem(f"row is split {raw!r} but split={self.wanted_split!r} was asked for")
        split = sys.intern(self.check_release_split(split))
        self.splits[raw] = split
        return split

    def label_of(self, raw: str) -> str | None:
        label = self.labels.get(raw, _MISSING)
        if label is _MISSING:
            label = self.labels[raw] = sys.intern(raw)
        return label

    def seconds_of(self, raw: str, column: str) -> int:
        value = self.ints.get(raw)
        if value is None:
            value = _seconds(raw, column)
            # bounded, so a streamed file of any length keeps flat memory (real files repeat
            # a few thousand values; a generated one may have a new value on every row)
            if len(self.ints) < _INTERNED_LIMIT:
                self.ints[raw] = value
        return value

    # -- Kinetics CSV ------------------------------------------------------------------------
    def read_kinetics_csv(self, columns: list[str], stream: IO[str]) -> None:
        unknown = [c for c in columns if c not in KINETICS_COLUMNS]
        missing = _KINETICS_REQUIRED - set(columns)
        if unknown or missing or len(set(columns)) != len(columns):
            raise self.error(
                1,
                f"expected a header of {','.join(KINETICS_COLUMNS)} (label, split and is_cc "
                f"optional, any order), got {','.join(columns)!r}",
            )
        at = {c: i for i, c in enumerate(columns)}
        i_id, i_start, i_end = at["youtube_id"], at["time_start"], at["time_end"]
        i_label, i_split, i_cc = at.get("label"), at.get("split"), at.get("is_cc")
        width = len(columns)
        split = self.fixed_split() if i_split is None else ""
        release = self.release.name
        ints, labels, splits = self.ints, self.labels, self.splits
        id_chars = YOUTUBE_ID_CHARS
        make_clip = tuple.__new__  # skips the NamedTuple's Python-level __new__
        emit = self.emit
        reader = csv.reader(stream)
        # The loop is the hot path of a 650k-row load: locals, dict hits for repeated
        # values, and the slow checks only when a value is met for the first time.
        try:
            for row in reader:
                if len(row) != width:
                    if not row:  # a blank line holds no row; nothing is lost by passing it
                        continue
                    raise _width_problem(row, columns)
                youtube_id = row[i_id]
                if len(youtube_id) != YOUTUBE_ID_LENGTH or youtube_id.strip(id_chars):
                    raise _bad_id(youtube_id)
                start = ints.get(row[i_start])
                if start is None:
                    start = self.seconds_of(row[i_start], "time_start")
                end = ints.get(row[i_end])
                if end is None:
                    end = self.seconds_of(row[i_end], "time_end")
                if end <= start:
                    raise _bad_span(start, end)
                label = None
                if i_label is not None:
                    label = labels.get(row[i_label], _MISSING)
                    if label is _MISSING:
                        label = self.label_of(row[i_label])
                if i_split is not None:
                    split = splits.get(row[i_split]) or self.split_of(row[i_split])
                is_cc = None
                if i_cc is not None:
                    is_cc = _IS_CC.get(row[i_cc])
                    if is_cc is None:
                        raise _RowProblem(f"is_cc must be 0 or 1, got {row[i_cc]!r}")
                emit(make_clip(Clip, (release, split, youtube_id, start, end, label, is_cc, None)))
        except _RowProblem as exc:
            raise self.error(reader.line_num + 1, exc) from None
        except csv.Error as exc:
            raise self.error(reader.line_num + 1, f"not valid CSV: {exc}") from exc

    # -- Countix -----------------------------------------------------------------------------
    def read_countix(self, columns: list[str], stream: IO[str]) -> None:
        unknown = [c for c in columns if c not in COUNTIX_COLUMNS]
        missing = _COUNTIX_REQUIRED - set(columns)
        if unknown or missing or len(set(columns)) != len(columns):
            raise self.error(
                1,
                f"expected a Countix header of {','.join(COUNTIX_COLUMNS)} (class optional), "
                f"got {','.join(columns)!r}",
            )
        at = {c: i for i, c in enumerate(columns)}
        i_label = at.get("class")
        reader = csv.reader(stream)
        try:
            split = self.fixed_split()
            for row in reader:
                if len(row) != len(columns):
                    if not row:
                        continue
                    raise _width_problem(row, columns)
                youtube_id = row[at["video_id"]]
                if not _is_youtube_id(youtube_id):
                    raise _bad_id(youtube_id)
                start = self.seconds_of(row[at["kinetics_start"]], "kinetics_start")
                end = self.seconds_of(row[at["kinetics_end"]], "kinetics_end")
                if end <= start:
                    raise _bad_span(start, end)
                count = row[at["count"]]
                if not (count.isascii() and count.isdigit() and int(count) > 0):
                    raise _RowProblem(f"count must be a whole number > 0, got {count!r}")
                extra = {
                    "repetition_start": _float_seconds(
                        row[at["repetition_start"]], "repetition_start"
                    ),
                    "repetition_end": _float_seconds(row[at["repetition_end"]], "repetition_end"),
                    "count": int(count),
                }
                label = None if i_label is None else self.label_of(row[i_label])
                self.emit(
                    Clip(self.release.name, split, youtube_id, start, end, label, None, extra)
                )
        except _RowProblem as exc:
            raise self.error(reader.line_num + 1, exc) from None
        except csv.Error as exc:
            raise self.error(reader.line_num + 1, f"not valid CSV: {exc}") from exc

    # -- AVA-Kinetics ------------------------------------------------------------------------
    def read_ava(self, first: str, stream: IO[str]) -> None:
        reader = csv.reader(_chain(first, stream))
        try:
            split = self.fixed_split()
            for row in reader:
                if len(row) != 2:
                    if not row:
                        continue
                    raise _width_problem(row, ["youtube_id", "timestamp"])
                youtube_id, raw = row
                if not _is_youtube_id(youtube_id):
                    raise _bad_id(youtube_id)
                timestamp = _float_seconds(raw, "timestamp")
                start = max(0, int(timestamp) - AVA_WINDOW // 2)
                self.emit(
                    Clip(
                        self.release.name, split, youtube_id, start, start + AVA_WINDOW,
                        None, None, {"timestamp": timestamp},
                    )
                )  # fmt: skip
        except _RowProblem as exc:
            raise self.error(reader.line_num, exc) from None
        except csv.Error as exc:
            raise self.error(reader.line_num, f"not valid CSV: {exc}") from exc

    # -- DeepMind JSON -----------------------------------------------------------------------
    def read_json(self, text: str) -> None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.error(exc.lineno, f"not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise self.error(1, "expected a JSON object keyed by youtube id")
        for youtube_id, entry in data.items():
            try:
                self.emit(self.json_clip(youtube_id, entry))
            except _RowProblem as exc:
                # JSON has no row numbers; find the entry's key in the text for the report.
                offset = text.find(json.dumps(youtube_id) + ":")
                line = text.count("\n", 0, offset) + 1 if offset >= 0 else None
                raise self.error(line, f"entry {youtube_id!r}: {exc}") from None

    def json_clip(self, youtube_id: str, entry: Any) -> Clip:
        if not _is_youtube_id(youtube_id):
            raise _RowProblem(
                f"key must be a youtube id ({YOUTUBE_ID_LENGTH} characters from [A-Za-z0-9_-])"
            )
        if not isinstance(entry, dict) or not isinstance(entry.get("annotations"), dict):
            raise _RowProblem("expected an object with 'annotations': {label, segment}")
        annotations = entry["annotations"]
        segment = annotations.get("segment")
        if (
            not isinstance(segment, list)
            or len(segment) != 2
            or not all(isinstance(s, (int, float)) and float(s).is_integer() for s in segment)
            or min(segment) < 0
        ):
            raise _RowProblem(f"segment must be [start, end] in whole seconds, got {segment!r}")
        start, end = int(segment[0]), int(segment[1])
        if end <= start:
            raise _bad_span(start, end)
        label = annotations.get("label")
        if label is not None and not isinstance(label, str):
            raise _RowProblem(f"label must be a string, got {label!r}")
        subset = entry.get("subset")
        if subset is None:
            split = self.fixed_split()
        elif not isinstance(subset, str):
            raise _RowProblem(f"subset must be a string, got {subset!r}")
        else:
            split = self.splits.get(subset) or self.split_of(subset)
        label = None if label is None else self.label_of(label)
        return Clip(self.release.name, split, youtube_id, start, end, label, None, None)

    # -- ls -R listing (CVDF 600/annotations/val.txt) ----------------------------------------
    def read_listing(self, head: str, stream: IO[str]) -> None:
        """Clips of ``ls -R <split>``: the class folders, then a block of mp4 names per class.

        The real K600 file has one entry that is a single space (a stray file in the
        abseiling tar). Entries that are only whitespace name no clip: each is reported in
        the log and passed over. Any other name that is not ``<id>_<start>_<end>.mp4``
        is an error.
        """
        top = head[:-1]
        prefix = top + "/"
        label: str | None = None
        in_top = True  # the first block lists the class folders themselves
        number = 1
        try:
            split = self.split_of(top)
            for number, text in enumerate(stream, start=2):
                entry = text.rstrip("\r\n")
                if not entry:
                    in_top, label = False, None
                    continue
                if in_top:
                    if entry.endswith(".mp4"):
                        raise _RowProblem(
                            f"expected class folder names under {head!r}, got {entry!r}"
                        )
                    continue
                if label is None:
                    if not (entry.startswith(prefix) and entry.endswith(":")):
                        raise _RowProblem(
                            f"expected a block header '{prefix}<class>:', got {entry!r}"
                        )
                    label = self.label_of(entry[len(prefix) : -1])
                    continue
                if not entry.strip():
                    logger.warning(
                        "%s:%d: passed over an entry named %r in the %r block (not a clip file)",
                        self.name, number, entry, label,
                    )  # fmt: skip
                    continue
                self.emit(self.listed_clip(entry, split, label))
        except _RowProblem as exc:
            raise self.error(number, exc) from None

    def listed_clip(self, entry: str, split: str, label: str) -> Clip:
        stem, _, ext = entry.rpartition(".")
        parts = stem.rsplit("_", 2)
        if not (
            ext == "mp4"
            and len(parts) == 3
            and _is_youtube_id(parts[0])
            and all(len(p) == 6 and p.isascii() and p.isdigit() for p in parts[1:])
        ):
            raise _RowProblem(
                f"expected a clip file name <youtube_id>_SSSSSS_EEEEEE.mp4, got {entry!r}"
            )
        start, end = int(parts[1]), int(parts[2])
        if end <= start:
            raise _bad_span(start, end)
        return Clip(self.release.name, split, parts[0], start, end, label, None, None)


def _chain(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest
