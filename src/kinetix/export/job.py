"""The export job: pick the usable rows of a root, give them class indices, drive one writer."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinetix.card import write_export_card
from kinetix.data.index import (
    LabelIndexer,
    RootInfo,
    count_left_out,
    describe_left_out,
    iter_usable,
    usable_rows,
    usable_selects,
)
from kinetix.errors import ConfigError
from kinetix.executors import Executor, Preflight, open_executor
from kinetix.export import kept
from kinetix.export.config import ExportConfig, ExportFormat
from kinetix.export.links import LinkTreeWriter
from kinetix.export.lists import (
    WHITESPACE,
    ListFormat,
    ListWriter,
    has_whitespace,
    list_format,
)
from kinetix.export.records import ExportRecord, WriterBase
from kinetix.export.tables import COLUMNS, CsvWriter, ParquetWriter
from kinetix.export.webdataset import ShardWriter
from kinetix.store.layout import LabelStyle, manifest_path, require_writable, slurm_logs
from kinetix.store.manifest import Manifest
from kinetix.store.usable import (
    ColumnTypesDiffer,
    arrow_read_pays,
    arrow_reader_available,
    list_line_columns,
    usable_arrow,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


@dataclass
class SplitReport:
    release: str
    split: str
    written: int
    left_out: Counter[str]
    output: Path | None = None  # the list / shard pattern of this split, when it has its own


@dataclass
class ExportReport:
    """What an export wrote, what it left out and why, and how to point a framework at it."""

    root: Path
    format: ExportFormat
    out: Path
    splits: list[SplitReport] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    unit: str = "clips"  # what ``written`` counts: clips, or annotation rows / keyframes
    kept: Path | None = None  # a table left as it was: already this manifest's export (kept.py)

    @property
    def written(self) -> int:
        return sum(s.written for s in self.splits)

    @property
    def left_out(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self.splits:
            total.update(s.left_out)
        return total


def export_root(root: str | Path, config: ExportConfig) -> ExportReport:
    """Export the usable clips of ``root`` as ``config.format``; see ``ExportReport``."""
    root = Path(root)
    if config.format.is_downstream:
        from kinetix.export.downstream import export_downstream  # it builds on this module

        return export_downstream(root, config)
    # csv and parquet read the rows into Arrow in C when pyarrow and adbc-driver-sqlite are
    # installed; a value Arrow cannot hold (text in an INTEGER column) starts over with rows
    arrow = config.format in (ExportFormat.CSV, ExportFormat.PARQUET) and arrow_reader_available()
    if arrow:
        try:
            return _export(root, config, arrow=True)
        except ColumnTypesDiffer as exc:
            log.info("%s; exporting row by row instead", exc)
    return _export(root, config, arrow=False)


def _export(root: Path, config: ExportConfig, *, arrow: bool) -> ExportReport:
    info = RootInfo.read(root)
    fmt = config.format
    if fmt in (ExportFormat.TORCHVISION, ExportFormat.WEBDATASET) and info.kind != "videos":
        raise ConfigError(f"--format {fmt.value} needs a videos root; {root} holds {info.kind}")
    out = config.out_dir(root)
    report = ExportReport(root, fmt, out)
    indexer = LabelIndexer()
    table = out / _TABLES[fmt] if fmt in _TABLES else None
    # taken before the manifest is read: a write after it moves the files this names
    state = kept.manifest_state(manifest_path(root)) if table is not None else None
    key: dict[str, Any] | None = None
    done: dict[tuple[str, str], int] | None = None  # rows per split of a table kept as it is
    with Manifest(manifest_path(root), readonly=True) as manifest, contextlib.ExitStack() as stack:
        pairs = _pairs(manifest, config, root)
        _refuse_whitespace(manifest, root, pairs, config, info.kind)
        _require_out(config, out)
        if table is not None and state is not None:
            key = kept.export_key(config, pairs, state)
            done = kept.kept_counts(table, key)
        if table is not None and done is None:
            kept.forget(table)
        shared: WriterBase | None = None
        if done is not None:
            report.kept = table
        elif fmt is ExportFormat.CSV:
            shared = stack.enter_context(CsvWriter(out / _TABLES[fmt]))
        elif fmt is ExportFormat.PARQUET:
            shared = stack.enter_context(ParquetWriter(out / _TABLES[fmt]))
        elif fmt is ExportFormat.TORCHVISION:
            shared = stack.enter_context(
                LinkTreeWriter(out, LabelStyle.TORCHVISION, hardlink=config.hardlink)
            )
        links: LinkTreeWriter | None = None
        if config.link_dir is not None:
            suffix = list_format(fmt.value, info.kind).dir_suffix
            links = stack.enter_context(
                LinkTreeWriter(
                    config.link_dir, config.link_style, hardlink=config.hardlink, suffix=suffix
                )
            )
        executor: Executor | None = None
        parallel = not config.executor.is_local or (config.workers or 1) > 1
        if fmt is ExportFormat.WEBDATASET and parallel:
            # shards are written by workers; the default writes each one here as it fills
            preflight = Preflight(out, visible=(manifest_path(root),))
            executor = open_executor(
                config.executor, config.workers, io_workers=config.workers,
                preflight=preflight, log_directory=slurm_logs(out),
            )  # fmt: skip
            stack.callback(executor.close)
        for release, split in pairs:
            own = _split_writer(config, info.kind, out, release, split, executor)
            written = 0
            with own if own is not None else contextlib.nullcontext():
                writer = own or shared
                if done is not None:
                    written = done.get((release, split), 0)
                elif links is None and isinstance(writer, (ListWriter, CsvWriter, ParquetWriter)):
                    written = _write_batches(
                        manifest, root, writer, release, split, config,
                        first=not report.splits, arrow=arrow,
                    )  # fmt: skip
                else:
                    assert writer is not None
                    records = _records(manifest, root, info.kind, release, split, config, indexer)
                    for record in records:
                        if links is not None:
                            record = links.link(record)
                        writer.write(record)
                        written += 1
            left_out = count_left_out(
                manifest, split=split, release=release, include_unverified=config.include_unverified
            )
            output = getattr(own, "path", None)
            if isinstance(own, ShardWriter):
                output = Path(own.pattern)
            report.splits.append(SplitReport(release, split, written, left_out, output))
            if left_out:
                log.warning(
                    "%s/%s: left out %d clips: %s", release, split, sum(left_out.values()),
                    describe_left_out(left_out),
                )  # fmt: skip
    if table is not None and key is not None and done is None:
        kept.remember(
            table, key, [(s.release, s.split, s.written) for s in report.splits],
            kept.manifest_state(manifest_path(root)),
        )  # fmt: skip
    report.hints = _hints(report, config, info.kind)
    write_export_card(
        out, root, fmt.value,
        [(s.release, s.split, s.written, sum(s.left_out.values())) for s in report.splits],
    )  # fmt: skip
    return report


def _require_out(config: ExportConfig, out: Path) -> None:
    """A read-only ``--out`` (or ROOT, for the default one) is one line before any writing."""
    default = "" if config.out is not None else " (the default --out, under ROOT)"
    require_writable(out, f"{out}{default}", "pass a writable --out DIR")
    if config.link_dir is not None:
        require_writable(config.link_dir, str(config.link_dir), "pass a writable --link-dir")


def _pairs(manifest: Manifest, config: ExportConfig, root: Path) -> list[tuple[str, str]]:
    pairs = manifest.splits()
    if config.release is not None:
        pairs = [p for p in pairs if p[0] == config.release]
    known = sorted({s for _, s in pairs})
    if config.splits is not None:
        check_splits(root, config.splits, known)
        pairs = [p for p in pairs if p[1] in config.splits]
    for split in {s for _, s in pairs}:
        releases = sorted(r for r, s in pairs if s == split)
        if len(releases) > 1:
            raise ConfigError(
                f"{root} holds split {split!r} of several releases ({', '.join(releases)}); "
                "pass --release"
            )
    if not pairs:
        raise ConfigError(f"{root} has no clips to export")
    return pairs


def check_splits(root: Path, wanted: Sequence[str], known: Sequence[str], what: str = "") -> None:
    """One line naming the ``--split`` values ``root`` does not have (``what``: whose splits)."""
    missing = [s for s in wanted if s not in known]
    if missing:
        raise ConfigError(
            f"{root} has no {what}split {', '.join(map(repr, missing))}; its splits are "
            f"{', '.join(known) or 'none'}"
        )


def _refuse_whitespace(
    manifest: Manifest, root: Path, pairs: list[tuple[str, str]], config: ExportConfig, kind: str
) -> None:
    """Text lists cannot hold paths with spaces; say so before writing any split.

    The first split is checked as it is written (``_write_list``), before anything else is,
    so a root of one split is read once. The others are read here in one unordered pass of
    one string per row; only when a path has whitespace are the rows read in order (from the
    first split) to name the first.
    """
    if not _checks_paths(config):
        return
    fmt = list_format(config.format.value, kind)  # a format the root cannot take fails here
    base = _list_base(root, config)
    if not pairs[1:] or not (has_whitespace(base) or any(
        has_whitespace("\0".join(map(itemgetter(0), rows)))
        for release, split in pairs[1:]
        for rows in usable_selects(
            manifest, ["path"], split=split, release=release,
            include_unverified=config.include_unverified, ordered=False,
        )
    )):  # fmt: skip
        return
    for release, split in pairs:
        for rows in usable_rows(
            manifest, ["path"], split=split, release=release,
            include_unverified=config.include_unverified,
        ):  # fmt: skip
            _refuse_paths(fmt, base, [path for (path,) in rows])


def _checks_paths(config: ExportConfig) -> bool:
    """Whether the export refuses paths with whitespace (text lists without a link tree)."""
    fmt = config.format
    return fmt.is_list and fmt is not ExportFormat.MMACTION_JSON and config.link_dir is None


def _list_base(root: Path, config: ExportConfig) -> str:
    return str(root).rstrip("/") + "/" if config.absolute else ""


def _refuse_paths(fmt: ListFormat, base: str, paths: list[str]) -> None:
    """Raise for the first of ``base + path`` that has whitespace, if one has."""
    if has_whitespace(base + "\0".join(paths)):
        path = next(p for p in (base + path for path in paths) if WHITESPACE.search(p))
        raise ConfigError(
            f"{path!r} contains whitespace, which {fmt.name} splits lines on; nothing was "
            "written. Pass --link-dir DIR to list links named without spaces"
        )


def _split_writer(
    config: ExportConfig,
    kind: str,
    out: Path,
    release: str,
    split: str,
    executor: Executor | None = None,
) -> WriterBase | None:
    if config.format.is_list:
        fmt = list_format(config.format.value, kind)
        return ListWriter(out / fmt.file_name(release, split), fmt, absolute=config.absolute)
    if config.format is ExportFormat.WEBDATASET:
        return ShardWriter(out, split, config.shard_size, executor)
    return None


def _write_batches(
    manifest: Manifest,
    root: Path,
    writer: ListWriter | CsvWriter | ParquetWriter,
    release: str,
    split: str,
    config: ExportConfig,
    *,
    first: bool = False,
    arrow: bool = False,
) -> int:
    """Stream one split's usable rows to a list or table writer in batches of plain tuples.

    ``first``: the first split written (a text list checks its paths as it goes). ``arrow``:
    a table's rows are read as Arrow batches (``usable_arrow``).
    """
    if isinstance(writer, ListWriter) and _checks_paths(config):
        return _write_list(manifest, root, writer, release, split, config, check=first)
    if (
        arrow
        and isinstance(writer, (CsvWriter, ParquetWriter))
        and arrow_read_pays(manifest, release, split)
    ):
        return _write_arrow(manifest, writer, release, split, config)
    is_list = isinstance(writer, ListWriter)
    columns = ["path", "label", "label_index", "num_frames"] if is_list else list(COLUMNS)
    at_label, at_index = columns.index("label"), columns.index("label_index")
    indexer = LabelIndexer()
    written = 0
    for rows in usable_rows(
        manifest, columns, split=split, release=release,
        include_unverified=config.include_unverified, batch=_TABLE_BATCH,
    ):  # fmt: skip
        # the class index is the stored one except for unlabelled rows and rows without one
        fixed = [
            row
            if row[at_label] is not None and row[at_index] is not None
            else (*row[:at_index], indexer(release, row[at_label], row[at_index]),
                  *row[at_index + 1 :])
            for row in rows
        ]  # fmt: skip
        if isinstance(writer, ListWriter):
            writer.write_batch(root, split, [(p, index, n) for p, _, index, n in fixed])
        elif isinstance(writer, ParquetWriter):
            writer.add_rows(fixed)
        else:
            writer.write_batch(fixed)
        written += len(fixed)
    if isinstance(writer, ParquetWriter):
        writer.end_group()  # each split's last row group ends with it, as it always did
    return written


def _write_arrow(
    manifest: Manifest,
    writer: CsvWriter | ParquetWriter,
    release: str,
    split: str,
    config: ExportConfig,
) -> int:
    """``_write_batches`` of a table from Arrow batches: the same rows, values and row groups."""
    indexer = LabelIndexer()
    before = writer.count
    for batch in usable_arrow(
        manifest, COLUMNS, split=split, release=release,
        include_unverified=config.include_unverified, batch=_TABLE_BATCH,
    ):  # fmt: skip
        writer.write_arrow(_with_label_index(batch, release, indexer))
    if isinstance(writer, ParquetWriter):
        writer.end_group()  # so the count holds the split's last rows
    return writer.count - before


def _with_label_index(batch: pa.RecordBatch, release: str, indexer: LabelIndexer) -> Any:
    """``batch`` with the class index ``_write_batches`` gives rows without a stored one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    at = batch.schema.get_field_index("label_index")
    label, stored = batch.column("label"), batch.column(at)
    fix = pc.or_(pc.is_null(label), pc.is_null(stored))
    if not pc.any(fix).as_py():
        return batch
    made = [
        indexer(release, name, index)
        for name, index in zip(label.filter(fix).to_pylist(), stored.filter(fix).to_pylist())
    ]
    fixed = pc.replace_with_mask(stored, fix, pa.array(made, pa.int64()))
    return batch.set_column(at, batch.schema.field(at), fixed)


# The one file each table format writes in --out (``kept``: left as it is when it is current)
_TABLES = {ExportFormat.CSV: "manifest.csv", ExportFormat.PARQUET: "manifest.parquet"}


# Rows a table reads at a time: 35 columns of Python values (~9 MB), so memory stays flat in
# N; Parquet row groups still hold ParquetWriter.ROW_GROUP rows (65,536, as before).
_TABLE_BATCH = 16384


# rows a list reads at a time: ~3 MB of Python strings, so memory stays flat in N
_LIST_BATCH = 16384


def _write_list(
    manifest: Manifest,
    root: Path,
    writer: ListWriter,
    release: str,
    split: str,
    config: ExportConfig,
    *,
    check: bool,
) -> int:
    """A text list from (path, line tail) rows SQL makes (``ListWriter.tail_sql``).

    ``check``: refuse paths with whitespace in this pass (the first split's: the export has
    written nothing else yet, and this list is discarded if it raises).
    """
    tail = writer.tail_sql()
    frames = "num_frames" if writer.format.frames else "NULL"
    columns = ["path", tail] if tail is not None else ["path", "label", "label_index", frames]
    base = _list_base(root, config)
    indexer = LabelIndexer()
    written = 0
    for rows in usable_selects(
        manifest, columns, split=split, release=release,
        include_unverified=config.include_unverified, batch=_LIST_BATCH,
    ):  # fmt: skip
        if check:
            _refuse_paths(writer.format, base, list(map(itemgetter(0), rows)))
        written += len(rows)
        if tail is None:
            entries = [(p, indexer(release, label, i), n) for p, label, i, n in rows]
            writer.write_batch(root, split, entries, checked=True)
        elif not writer.write_tails(root, split, rows):
            _write_list_rows(manifest, root, writer, release, split, rows, indexer)
    return written


def _write_list_rows(
    manifest: Manifest,
    root: Path,
    writer: ListWriter,
    release: str,
    split: str,
    rows: list[tuple[str, str]],
    indexer: LabelIndexer,
) -> None:
    """A batch holding rows whose line Python makes: those from their columns, in order."""
    start = 0
    for i in [i for i, (_, tail) in enumerate(rows) if tail.startswith("\0")]:
        writer.write_tails(root, split, rows[start:i])
        (path, label, stored, n) = list_line_columns(manifest, int(rows[i][1][1:]))
        writer.write_batch(root, split, [(path, indexer(release, label, stored), n)], checked=True)
        start = i + 1
    writer.write_tails(root, split, rows[start:])


def _records(
    manifest: Manifest,
    root: Path,
    kind: str,
    release: str,
    split: str,
    config: ExportConfig,
    indexer: LabelIndexer,
) -> Iterator[ExportRecord]:
    rows = iter_usable(
        manifest, split=split, release=release, include_unverified=config.include_unverified
    )
    if config.shuffle:
        # shuffle keys, not rows: 240k manifest rows would not fit in memory comfortably
        keys = [row.key for row in rows]
        order = np.random.default_rng(config.seed).permutation(len(keys))
        rows = (r for r in (manifest.get(release, split, keys[i]) for i in order) if r)
    for row in rows:
        assert row.path is not None  # iter_usable skips rows without one
        label_index = indexer(row.release, row.label, row.values.get("label_index"))
        yield ExportRecord(row, label_index, kind, root, row.path)


def _hints(report: ExportReport, config: ExportConfig, kind: str) -> list[str]:
    """One line per split saying how to point the target framework at the output."""
    fmt = config.format
    base = config.link_dir or report.root
    hints = []
    for s in report.splits:
        prefix = "" if config.absolute else str(base / s.split)
        if fmt in (ExportFormat.MMACTION, ExportFormat.MMACTION_JSON):
            field_name = "img" if kind == "frames" else "video"
            hints.append(
                f"mmaction2 {s.split}: ann_file='{s.output}', "
                f"data_prefix=dict({field_name}='{prefix}')"
            )
        elif fmt is ExportFormat.PADDLE:
            hints.append(f"PaddleVideo {s.split}: file_path: {s.output}  data_prefix: {prefix}")
        elif fmt is ExportFormat.WEBDATASET:
            hints.append(f"webdataset {s.split}: webdataset.WebDataset('{s.output}')")
        elif fmt is ExportFormat.TORCHVISION:
            hints.append(
                f"torchvision {s.split}: torchvision.datasets.Kinetics('{report.out}', "
                f"frames_per_clip=16, split='{s.split}')"
            )
    if fmt is ExportFormat.SLOWFAST:
        hints.append(
            f"SlowFast: DATA.PATH_TO_DATA_DIR {report.out} DATA.PATH_PREFIX "
            f"{'' if config.absolute else base}"
        )
    if fmt is ExportFormat.TORCHVISION:
        hints.append(
            "torchvision numbers classes by sorted folder name, not the mmaction2 label map"
        )
    if fmt is ExportFormat.PADDLE and kind == "frames" and config.link_dir is None:
        hints.append(
            "PaddleVideo lists name frame folders '{key}.mp4' (as its extract_rawframes.py "
            "does) while kinetix folders are '{key}': pass --link-dir DIR for a tree that has them"
        )
    left = report.left_out
    if left.get("not verified"):
        hints.append("pass --include-unverified to also export clips never verified")
    return hints
