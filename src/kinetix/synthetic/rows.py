"""Real annotation rows for the synthetic mirror: where they are read, picked and written back."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.errors import ConfigError

log = logging.getLogger(__name__)

SHARED_DATA_ENV = "KINETIX_SHARED_DATA"
EXCERPTS_DIR = Path(__file__).with_name("excerpts")


@dataclass(frozen=True)
class RowSource:
    """The real file the rows of one release/split come from, and its packaged excerpt."""

    release: str
    split: str
    shared: str  # path under the shared metadata folder (see its SOURCES.md)
    excerpt: str  # file name under kinetix/synthetic/excerpts/
    listing: bool = False  # an ``ls -R`` listing (CVDF K600 val.txt) instead of a CSV

    @property
    def labelled(self) -> bool:
        return self.split != "test" or self.release == "k400"


ROW_SOURCES: dict[tuple[str, str], RowSource] = {
    (s.release, s.split): s
    for s in (
        # tiny_train.csv is a real-row sample (1 train row per class, CVDF quoting): the full
        # train CSVs are not obtainable here.
        RowSource("k400", "train", "k400/derived/tiny_train.csv", "k400_train.csv"),
        RowSource("k400", "val", "k400/val.csv", "k400_val.csv"),
        RowSource("k400", "test", "k400/test.csv", "k400_test.csv"),
        RowSource("k600", "val", "k600/val.txt", "k600_val.txt", listing=True),
        RowSource("k600", "test", "k600/test.csv", "k600_test.csv"),
        RowSource("k700-2020", "val", "k700_2020/val.csv", "k700_2020_val.csv"),
        RowSource("k700-2020", "test", "k700_2020/test.csv", "k700_2020_test.csv"),
        RowSource("k700", "val", "k700/kinetics-700_val.csv", "k700_val.csv"),
    )
}

# Classes picked first, awkward names first: the one apostrophe, upper case, parentheses
# (and K600's lower-case spelling of the American football class).
PREFERRED_CLASSES: dict[str, tuple[str, ...]] = {
    "k400": (
        "massaging person's head",
        "passing American football (in game)",
        "skiing (not slalom or crosscountry)",
        "tying knot (not on a tie)",
        "air drumming",
        "abseiling",
        "zumba",
        "dying hair",
    ),
    "k600": (
        "massaging person's head",
        "throwing ball (not baseball or American football)",
        "passing american football (not in game)",
        "tying knot (not on a tie)",
        "air drumming",
        "abseiling",
        "zumba",
    ),
    "k700": (
        "massaging person's head",
        "throwing ball (not baseball or American football)",
        "passing American football (in game)",
        "tying knot (not on a tie)",
        "air drumming",
        "abseiling",
        "zumba",
    ),
}
PREFERRED_CLASSES["k700-2020"] = PREFERRED_CLASSES["k700"]


def find_shared_data() -> Path | None:
    """The real metadata folder: ``$KINETIX_SHARED_DATA``, else ``<repo>/../shared/data/kinetics``.

    None when neither exists (an installed kinetix without the repo checkout next to it).
    """
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{SHARED_DATA_ENV}={env} is not a folder")
        return path
    repo = Path(__file__).resolve().parents[3]  # src/kinetix/synthetic/rows.py -> repo
    candidate = repo.parent / "shared" / "data" / "kinetics"
    return candidate if candidate.is_dir() else None


@dataclass(frozen=True)
class SourceRow:
    """One annotated clip and the exact text of its row (line ending included)."""

    clip: Clip
    line: str
    order: int  # position in the source file, to write rows back in the same order


@dataclass(frozen=True)
class RowTable:
    """The rows of one release/split as read from a real file (or its packaged excerpt)."""

    source: RowSource
    path: Path
    header: str  # the CSV header line, or the listing's ``val:`` line
    rows: tuple[SourceRow, ...]
    listing_classes: tuple[str, ...] = ()  # class order of an ``ls -R`` listing

    @property
    def labels(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            if row.clip.label is not None:
                seen.setdefault(row.clip.label)
        return list(seen)


def read_rows(release: str, split: str, data_dir: Path | None) -> RowTable:
    """Read the real rows of ``release``/``split`` from ``data_dir`` or the packaged excerpt."""
    try:
        source = ROW_SOURCES[(release, split)]
    except KeyError:
        valid = ", ".join(f"{r} {s}" for r, s in ROW_SOURCES)
        raise ConfigError(
            f"no real annotation rows for {release} {split} (the full train files are not "
            f"obtainable offline); valid release/splits are {valid}"
        ) from None
    path = data_dir / source.shared if data_dir is not None else EXCERPTS_DIR / source.excerpt
    if not path.is_file():
        raise ConfigError(f"real annotation file {path} for {release} {split} is missing")
    with path.open(encoding="utf-8", newline="") as f:
        lines = f.readlines()
    if source.listing:
        return _read_listing(source, path, lines)
    return _read_csv(source, path, lines)


def _read_csv(source: RowSource, path: Path, lines: list[str]) -> RowTable:
    columns = next(csv.reader([lines[0].rstrip("\r\n")]))
    rows = []
    for order, line in enumerate(lines[1:], start=1):
        record = dict(zip(columns, next(csv.reader([line.rstrip("\r\n")]))))
        is_cc = record.get("is_cc")
        clip = Clip(
            release=source.release,
            split=source.split,
            youtube_id=record["youtube_id"],
            time_start=int(record["time_start"]),
            time_end=int(record["time_end"]),
            label=record.get("label") or None,
            is_cc=None if is_cc is None else is_cc == "1",
        )
        rows.append(SourceRow(clip, line, order))
    return RowTable(source, path, lines[0], tuple(rows))


def _read_listing(source: RowSource, path: Path, lines: list[str]) -> RowTable:
    """``ls -R val``: ``val:``, the class folders, then one ``val/<class>:`` block per class."""
    header = lines[0]
    prefix = header.rstrip("\r\n").rstrip(":")
    classes: list[str] = []
    rows: list[SourceRow] = []
    label: str | None = None
    in_header = True
    for order, line in enumerate(lines[1:], start=1):
        text = line.rstrip("\r\n")
        if in_header:
            if text:
                classes.append(text)
                continue
            in_header = False
        if text.startswith(f"{prefix}/") and text.endswith(":"):
            label = text[len(prefix) + 1 : -1]
            continue
        stem, dot, ext = text.rpartition(".")
        parts = stem.rsplit("_", 2)
        if label is None or not dot or ext != "mp4" or len(parts) != 3:
            continue  # the blank lines between blocks, and one stray " " entry in the real file
        youtube_id, start, end = parts
        clip = Clip(source.release, source.split, youtube_id, int(start), int(end), label)
        rows.append(SourceRow(clip, line, order))
    return RowTable(source, path, header, tuple(rows), tuple(classes))


def _hash_rank(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def rank_rows(
    rows: Iterable[SourceRow], seed: int, short_end: int | None = None
) -> list[SourceRow]:
    """A deterministic pick order: one id starting with ``-`` first (if any), then by hash.

    With ``short_end`` set, clips ending by that second come before the others, so the
    full-length source videos made for them stay short.
    """
    ordered = sorted(
        rows,
        key=lambda r: (
            short_end is not None and r.clip.time_end > short_end,
            _hash_rank(seed, r.clip.key),
        ),
    )
    for i, row in enumerate(ordered):
        short = short_end is None or row.clip.time_end <= short_end
        if row.clip.youtube_id.startswith("-") and short:
            ordered.insert(0, ordered.pop(i))
            break
    return ordered


def pick_classes(
    table: RowTable, count: int, names: Sequence[str] = (), seed: int = 0
) -> list[str]:
    """``names`` (which must exist), then the release's awkward-name classes, then by hash."""
    labels = table.labels
    known = set(labels)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"{table.source.release} {table.source.split} has no class "
            f"{', '.join(map(repr, unknown))} in {table.path}"
        )
    chosen = list(dict.fromkeys(names))
    for name in PREFERRED_CLASSES.get(table.source.release, ()):
        if name in known and name not in chosen:
            chosen.append(name)
    rest = sorted((n for n in labels if n not in chosen), key=lambda n: _hash_rank(seed, n))
    chosen = (chosen + rest)[: max(count, len(names))]
    if len(chosen) < count:
        raise ConfigError(
            f"{table.path} holds only {len(labels)} classes of {table.source.release} "
            f"{table.source.split}, {count} were asked for; point {SHARED_DATA_ENV} at the real "
            "metadata folder for more"
        )
    return chosen


def write_annotation(table: RowTable, rows: Sequence[SourceRow], dest: Path) -> None:
    """Write ``rows`` in the real file's own format: same header, quoting, line endings, order."""
    ordered = sorted(rows, key=lambda r: r.order)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not table.source.listing:
        text = table.header + "".join(r.line for r in ordered)
    else:
        prefix = table.header.rstrip("\r\n").rstrip(":")
        by_label: dict[str, list[str]] = {}
        for row in ordered:
            by_label.setdefault(row.clip.label or "", []).append(row.line)
        classes = [c for c in table.listing_classes if c in by_label]
        blocks = [f"{prefix}/{c}:\n" + "".join(by_label[c]) for c in classes]
        text = table.header + "".join(f"{c}\n" for c in classes) + "\n" + "\n".join(blocks)
    with dest.open("w", encoding="utf-8", newline="") as f:
        f.write(text)


def deepmind_csv(rows: Iterable[SourceRow]) -> str:
    """The DeepMind-style CSV of ``rows``: split ``validate``, sorted by youtube id, no quotes."""
    clips = sorted((r.clip for r in rows), key=lambda c: (c.youtube_id, c.time_start))
    labelled = all(c.label is not None for c in clips)
    header = "label,youtube_id,time_start,time_end,split\n"
    if not labelled:
        header = header.removeprefix("label,")
    lines = [header]
    for c in clips:
        split = "validate" if c.split == "val" else c.split
        label = f"{c.label}," if labelled else ""
        lines.append(f"{label}{c.youtube_id},{c.time_start},{c.time_end},{split}\n")
    return "".join(lines)
