"""Usable clips: the manifest rows loaders and exporters read, and why the others are left out.

A usable row is present, has a path, and verified good (or, with ``include_unverified``, was
never verified). Every query here is this package's own SQL; callers get rows, batches of
tuples or a split's columns concatenated by SQLite, never a cursor to run their own.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from kinetix.errors import ManifestError
from kinetix.store.database import reader_uri
from kinetix.store.manifest import CLIP_COLUMNS, ID_COLUMNS, ClipRow, Manifest

if TYPE_CHECKING:
    import pyarrow as pa


def usable_states(include_unverified: bool) -> tuple[list[str], list[str | None]]:
    """(states, verify values) of the rows a loader or exporter uses.

    Only clips on disk that verified good, unless ``include_unverified`` (then also those never
    verified). Clips verified bad are never used.
    """
    return ["present"], (["good", None] if include_unverified else ["good"])


def count_left_out(
    manifest: Manifest,
    *,
    split: str | None = None,
    release: str | None = None,
    include_unverified: bool = False,
) -> Counter[str]:
    """Why rows are not used, by reason: a state (missing, failed, ...), unverified or bad.

    From the manifest's counters (O(groups)), plus a count of present rows without a path
    that the partial index ``clips_no_path`` answers without a scan.
    """
    reasons: Counter[str] = Counter()
    for row in manifest.clip_counts():
        row_release, row_split, _, state, _, verify, _, n, _ = row
        if (split is not None and row_split != split) or (
            release is not None and row_release != release
        ):
            continue
        if state != "present":
            reasons[state] += n
        elif verify == "bad":
            reasons["verified bad"] += n
        elif verify is None and not include_unverified:
            reasons["not verified"] += n
    # the partial index's own WHERE, word for word (roots made before it scan instead)
    has_index = manifest.execute(
        "SELECT 1 FROM sqlite_master WHERE type='index' AND name='clips_no_path'"
    ).fetchone()
    sql = "SELECT COUNT(*) FROM clips" + (" INDEXED BY clips_no_path" if has_index else "")
    sql += " WHERE state='present' AND (path IS NULL OR path = '')"
    _, verify_values = usable_states(include_unverified)
    sql += (
        " AND (verify='good' OR verify IS NULL)" if None in verify_values else " AND verify='good'"
    )
    args: list[str] = []
    if split is not None:
        sql += " AND split=?"
        args.append(split)
    if release is not None:
        sql += " AND release=?"
        args.append(release)
    (no_path,) = manifest.execute(sql, args).fetchone()
    if no_path:
        reasons["no path"] += no_path
    return reasons


def describe_left_out(reasons: Counter[str]) -> str:
    """``7 missing, 3 failed, 2 not verified``: largest first, ties by name; empty for none."""
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n} {why}" for why, n in ranked if n)


def iter_usable(
    manifest: Manifest,
    *,
    split: str | None = None,
    release: str | None = None,
    include_unverified: bool = False,
) -> Iterator[ClipRow]:
    """Usable rows in manifest order (split, label, key); rows without a path are skipped."""
    states, verify = usable_states(include_unverified)
    for row in manifest.clips(release=release, split=split, states=states, verify=verify):
        if row.path:
            yield row


def usable_rows(
    manifest: Manifest,
    columns: Sequence[str],
    *,
    split: str | None = None,
    release: str | None = None,
    include_unverified: bool = False,
    batch: int = 65536,
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows ``iter_usable`` yields, as batches of plain tuples of ``columns`` from SQL.

    No row objects: at 650k clips building a ``ClipRow`` per row costs more than the export.
    """
    unknown = set(columns) - set(CLIP_COLUMNS) - set(ID_COLUMNS)
    if unknown:
        raise ManifestError(f"unknown manifest columns {sorted(unknown)}")
    yield from _usable_batches(
        manifest, columns, split=split, release=release,
        include_unverified=include_unverified, batch=batch,
    )  # fmt: skip


def usable_selects(
    manifest: Manifest,
    expressions: Sequence[str],
    *,
    split: str | None = None,
    release: str | None = None,
    include_unverified: bool = False,
    ordered: bool = True,
    batch: int = 65536,
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of SQL ``expressions`` over the usable rows (in manifest order if ``ordered``).

    For expressions this package builds itself (an export's whole line, say), never a caller's
    text: SQLite computes them with no Python object per row.
    """
    yield from _usable_batches(
        manifest, expressions, split=split, release=release,
        include_unverified=include_unverified, ordered=ordered, batch=batch,
    )  # fmt: skip


def list_tail_sql(frames: bool) -> str:
    """SQL for what follows a path on a text list's line: `` {label}\\n`` (`` {n} {label}\\n``).

    Where Python must make the line (no stored integer class index, or num_frames) it is
    ``char(0) || rowid`` instead: ``list_line_columns`` reads that row's columns.
    """
    index = "CASE WHEN label IS NULL THEN -1 ELSE label_index END"
    usable = "label IS NULL OR typeof(label_index) = 'integer'"
    tail = f"' ' || {index} || char(10)"
    if frames:
        usable = f"({usable}) AND typeof(num_frames) = 'integer'"
        tail = f"' ' || num_frames || {tail}"
    return f"CASE WHEN {usable} THEN {tail} ELSE char(0) || rowid END"


def list_line_columns(manifest: Manifest, rowid: int) -> tuple[str, str | None, Any, Any]:
    """(path, label, label_index, num_frames) of the row ``list_tail_sql`` named by its rowid."""
    (path, label, stored, n) = manifest.execute(
        "SELECT path, label, label_index, num_frames FROM clips WHERE rowid=?",
        (rowid,),
    ).fetchone()
    return path, label, stored, n


def _usable_sql(
    expressions: Sequence[str],
    split: str | None,
    release: str | None,
    include_unverified: bool,
    *,
    ordered: bool = True,
) -> tuple[str, list[str]]:
    """SELECT of ``expressions`` over the usable rows in manifest order, and its arguments."""
    _, verify = usable_states(include_unverified)
    where = ["state='present'", "path IS NOT NULL", "path <> ''"]
    where.append("(verify='good' OR verify IS NULL)" if None in verify else "verify='good'")
    args: list[str] = []
    if split is not None:
        where.append("split=?")
        args.append(split)
    if release is not None:
        where.append("release=?")
        args.append(release)
    # NOT INDEXED: one pass in table order reads ~2x faster than a hop through the state
    # index per row; most rows of a split are usable, so the index saves nothing
    sql = f"SELECT {', '.join(expressions)} FROM clips NOT INDEXED WHERE {' AND '.join(where)}"
    if ordered:
        # the same order; with the split fixed the sorter compares one column less
        sql += " ORDER BY label, key" if split is not None else " ORDER BY split, label, key"
    return sql, args


def _usable_batches(
    manifest: Manifest,
    expressions: Sequence[str],
    *,
    split: str | None,
    release: str | None,
    include_unverified: bool,
    ordered: bool = True,
    batch: int = 65536,
) -> Iterator[list[tuple[Any, ...]]]:
    """``usable_rows`` of trusted SQL expressions (this package's own, never a caller's)."""
    sql, args = _usable_sql(expressions, split, release, include_unverified, ordered=ordered)
    cur = manifest.execute(sql, args)
    cur.row_factory = None  # type: ignore[assignment]  # tuples, not sqlite3.Row
    while rows := cur.fetchmany(batch):
        yield rows


class ColumnTypesDiffer(ManifestError):
    """A usable row holds a value of another type than its column's declared one (text in an
    INTEGER column, say), which an Arrow column of that type cannot hold; read rows instead."""


def arrow_reader_available() -> bool:
    """Whether ``usable_arrow`` can run: pyarrow and ``adbc-driver-sqlite`` are installed
    (both come with the ``parquet`` extra)."""
    return all(importlib.util.find_spec(m) is not None for m in ("pyarrow", "adbc_driver_sqlite"))


# Splits smaller than this are read by the row / SQL-text paths: importing pyarrow and ADBC
# costs ~0.2 CPU-s, more than the Arrow read saves on 10k rows (it saves ~40% at 100k+).
ARROW_MIN_ROWS = 50_000


def arrow_read_pays(manifest: Manifest, release: str, split: str) -> bool:
    """Whether ``usable_arrow``/``index_arrow`` should read ``release/split``: the reader is
    installed and the split has ``ARROW_MIN_ROWS`` rows (from the counters: no scan)."""
    return manifest.split_size(release, split) >= ARROW_MIN_ROWS and arrow_reader_available()


# A first row of the declared types: ADBC's SQLite driver takes each column's type from the
# first batch it reads, so a column NULL in all of it would come out INT64 and a later text
# value would fail. The row is dropped before the batch is yielded.
_TYPED_LITERALS = {"TEXT": "''", "INTEGER": "0", "REAL": "0.0"}


def usable_arrow(
    manifest: Manifest,
    columns: Mapping[str, str],
    *,
    split: str,
    release: str | None = None,
    include_unverified: bool = False,
    batch: int = 16384,
) -> Iterator[pa.RecordBatch]:
    """The rows ``usable_rows`` yields, as Arrow record batches of ``batch`` rows, read in C by
    ADBC's SQLite driver (no Python object per cell).

    ``columns`` maps each column to its declared type (TEXT, INTEGER or REAL), which the batches
    have (string, int64, float64). Raises ``ColumnTypesDiffer`` when a value is of another type
    (then nothing read so far is of use: read rows instead). Reads the manifest file as it is
    committed, through its own read-only connection. Needs ``arrow_reader_available()``.
    """
    unknown = set(columns) - set(CLIP_COLUMNS) - set(ID_COLUMNS)
    if unknown:
        raise ManifestError(f"unknown manifest columns {sorted(unknown)}")
    picked = {name: (f'c."{name}"', kind) for name, kind in columns.items()}
    yield from _ordered_arrow(manifest, picked, split, release, include_unverified, batch)


def _ordered_arrow(
    manifest: Manifest,
    columns: Mapping[str, tuple[str, str]],
    split: str,
    release: str | None,
    include_unverified: bool,
    batch: int,
) -> Iterator[pa.RecordBatch]:
    """``columns`` (name: (SQL expression over ``c``, this package's own; declared type)) of
    the usable rows of ``split`` in manifest order (label, key), as Arrow batches of the
    declared types, read by ADBC's SQLite driver.

    SQLite sorting the rows costs ~1.3 s at 650k (the sorter carries every row); here one
    unordered scan reads (label, key, rowid), Arrow sorts them (NULL labels first, bytes
    compared: SQLite's BINARY order), and the rows are fetched by rowid ``batch`` at a time in
    that order (a JSON array of rowids, ``json_each`` as the outer loop), so no more than one
    batch of rows is held.
    """
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa
    import pyarrow.compute as pc

    sql, args = _usable_sql(["1"], split, release, include_unverified, ordered=False)
    scan = sql[sql.index(" FROM clips") :]
    sort_columns = {"label": ("label", "TEXT"), "key": ("key", "TEXT"), "r": ("rowid", "INTEGER")}
    fetch = "FROM json_each(?) AS j CROSS JOIN clips AS c ON c.rowid = j.value"
    with adbc.connect(reader_uri(manifest.path)) as connection, connection.cursor() as cur:
        keys = pa.Table.from_batches(
            list(_typed_batches(manifest, cur, sort_columns, scan, args, 65536)),
            schema=_arrow_schema(sort_columns),
        )
        order = pc.sort_indices(
            keys, sort_keys=[("label", "ascending", "at_start"), ("key", "ascending", "at_start")]
        )
        rowids = keys.column("r").take(order).to_numpy()
        del keys, order
        for start in range(0, len(rowids), batch):
            chunk = "[" + ",".join(map(str, rowids[start : start + batch].tolist())) + "]"
            yield from _typed_batches(manifest, cur, columns, fetch, [chunk], batch)


def _arrow_schema(columns: Mapping[str, tuple[str, str]]) -> pa.Schema:
    import pyarrow as pa

    arrow = {"TEXT": pa.string(), "INTEGER": pa.int64(), "REAL": pa.float64()}
    return pa.schema([(name, arrow[kind]) for name, (_, kind) in columns.items()])


def _typed_batches(
    manifest: Manifest,
    cur: Any,
    columns: Mapping[str, tuple[str, str]],
    body: str,
    args: Sequence[Any],
    batch: int,
) -> Iterator[pa.RecordBatch]:
    """``SELECT`` of ``columns`` ``body`` on ADBC cursor ``cur``, as Arrow batches of the
    declared types (``_TYPED_LITERALS``: a first row of those types, dropped)."""
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa

    schema = _arrow_schema(columns)
    typed = ", ".join(f'{_TYPED_LITERALS[kind]} AS "{name}"' for name, (_, kind) in columns.items())
    picked = ", ".join(expression for expression, _ in columns.values())
    sql = f"SELECT {typed} UNION ALL SELECT {picked} {body}"
    first = True
    cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch)})
    try:
        cur.execute(sql, list(args))
        reader = cur.fetch_record_batch()
        while True:
            try:
                got = reader.read_next_batch()
            except StopIteration:
                return
            if first:
                got, first = got.slice(1), False
            if got.num_rows:
                yield pa.RecordBatch.from_arrays(
                    [col.cast(field.type) for col, field in zip(got.columns, schema)],
                    schema=schema,
                )
    except pa.ArrowInvalid as exc:  # a batch that read mixed types does not cast
        raise ColumnTypesDiffer(f"{manifest.path}: {exc}") from None
    except (OSError, adbc.Error) as exc:  # a later batch has another type than the first
        if "mismatch" not in str(exc).lower():
            raise
        raise ColumnTypesDiffer(f"{manifest.path}: {exc}") from None


# What ClipIndex.load reads, one column per array, each the whole split concatenated in SQL:
# no Python object per row at all (650k rows as tuples cost ~2 s). Strings are joined with
# their byte lengths beside them; NULLs become the arrays' "not recorded" values; reals are
# printed with 17 significant digits (``%!.17g``), which read back to the same double.
# (integral values, most of them, print as integers: printf costs ~0.5 us a row)
_REAL = (
    "CASE WHEN {0} = CAST({0} AS INTEGER) THEN CAST({0} AS INTEGER) ELSE printf('%!.17g', {0}) END"
)
_INDEX_AGGREGATES = (
    "count(*)",
    "group_concat(key, '')",
    "group_concat(length(CAST(key AS BLOB)))",
    "group_concat(path, '')",
    "group_concat(length(CAST(path AS BLOB)))",
    # -2: labelled but no stored index (the registry gives it)
    "group_concat(CASE WHEN label IS NULL THEN -1 WHEN label_index IS NULL THEN -2 "
    "ELSE label_index END)",
    "group_concat(coalesce(num_frames, -1))",
    f"group_concat(CASE WHEN fps IS NULL THEN 'nan' ELSE {_REAL.format('fps')} END)",
    "group_concat(coalesce(width, -1))",
    "group_concat(coalesce(height, -1))",
    "group_concat(trim IS 'fast')",
    # start_offset = keyframe time - time_start (<= 0 for a fast trim)
    "group_concat(CASE WHEN start_offset IS NULL OR start_offset >= 0 THEN 0 ELSE "
    f"{_REAL.format('-start_offset')} END)",
)
_INDEX_COLUMNS = (
    "key", "path", "label", "label_index", "num_frames", "fps", "width", "height", "trim",
    "start_offset",
)  # fmt: skip


class IndexText(NamedTuple):
    """A split's usable rows as SQLite concatenated them (``index_text``): comma-separated
    numbers, strings joined with their byte lengths beside them, all in manifest order."""

    rows: int
    keys: str | None
    key_lengths: str | None
    paths: str | None
    path_lengths: str | None
    labels: str | None  # class index; -1 unlabelled, -2 labelled with no stored index
    num_frames: str | None
    fps: str | None
    widths: str | None
    heights: str | None
    fast_trim: str | None
    lead_seconds: str | None


def index_text(
    manifest: Manifest, split: str, release: str | None, *, include_unverified: bool
) -> IndexText:
    """The columns of a clip index of ``split``: one aggregate over its usable rows.

    The aggregate reads a subquery with ORDER BY; SQLite never flattens such a subquery
    into an aggregate, so rows arrive in that order (tests compare with a row-by-row read).
    """
    ordered, args = _usable_sql(_INDEX_COLUMNS, split, release, include_unverified)
    row = manifest.execute(f"SELECT {', '.join(_INDEX_AGGREGATES)} FROM ({ordered})", args)
    return IndexText(*row.fetchone())


def unindexed_labels(
    manifest: Manifest, split: str, release: str | None, *, include_unverified: bool
) -> list[str]:
    """Labels of the usable labelled rows with no stored ``label_index``, in manifest order."""
    ordered, args = _usable_sql(_INDEX_COLUMNS, split, release, include_unverified)
    cur = manifest.execute(
        f"SELECT label FROM ({ordered}) WHERE label IS NOT NULL AND label_index IS NULL", args
    )
    return [name for (name,) in cur.fetchall()]


# What ``index_arrow`` reads: the values ``_INDEX_AGGREGATES`` gives, one typed column each
# (-1 unlabelled, -2 labelled with no stored index; the lead of a fast trim, else 0)
_LABEL_CODE = (
    "CASE WHEN c.label IS NULL THEN -1 WHEN c.label_index IS NULL THEN -2 ELSE c.label_index END"
)
_LEAD = "CASE WHEN c.start_offset IS NULL OR c.start_offset >= 0 THEN 0.0 ELSE -c.start_offset END"
_INDEX_ARROW = {
    "key": ("c.key", "TEXT"),
    "path": ("c.path", "TEXT"),
    "labels": (_LABEL_CODE, "INTEGER"),
    "num_frames": ("coalesce(c.num_frames, -1)", "INTEGER"),
    "fps": ("c.fps", "REAL"),
    "width": ("coalesce(c.width, -1)", "INTEGER"),
    "height": ("coalesce(c.height, -1)", "INTEGER"),
    "fast_trim": ("c.trim IS 'fast'", "INTEGER"),
    "lead_seconds": (_LEAD, "REAL"),
}


def index_arrow(
    manifest: Manifest, split: str, release: str | None, *, include_unverified: bool
) -> Iterator[pa.RecordBatch]:
    """``index_text``'s columns (``fps`` keeps its NULLs) and ``label`` (the text, NULL
    unlabelled) as Arrow record batches in one scan in *table* order, not manifest order: the
    clip index holds every row anyway and orders them itself, which costs less than the hop
    by rowid that keeps ``usable_arrow`` in order (~0.4 CPU-s at 650k). Needs
    ``arrow_reader_available()``; raises ``ColumnTypesDiffer`` as ``usable_arrow`` does."""
    import adbc_driver_sqlite.dbapi as adbc

    sql, args = _usable_sql(["1"], split, release, include_unverified, ordered=False)
    scan = sql[sql.index(" FROM clips") :].replace(" FROM clips ", " FROM clips AS c ", 1)
    columns = {**_INDEX_ARROW, "label": ("c.label", "TEXT")}
    with adbc.connect(reader_uri(manifest.path)) as connection, connection.cursor() as cur:
        yield from _typed_batches(manifest, cur, columns, scan, args, 65536)
