"""The manifest's usable rows as one CSV or Parquet table (label_index filled in)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinetix.errors import MissingDependencyError
from kinetix.export.atomic import AtomicFile
from kinetix.export.records import ExportRecord, WriterBase
from kinetix.store.manifest import CLIP_COLUMNS, ID_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = {**ID_COLUMNS, **{k: v.split()[0] for k, v in CLIP_COLUMNS.items()}}


def table_row(record: ExportRecord) -> dict[str, Any]:
    row = record.row.as_dict()
    row["label_index"] = record.label_index
    return {col: row.get(col) for col in COLUMNS}


class CsvWriter(WriterBase):
    """``manifest.csv``: a header, then one line per clip; empty cells for NULL."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._file = AtomicFile(path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file.file)
        self._csv.writerow(COLUMNS)

    def write(self, record: ExportRecord) -> None:
        self.write_batch([tuple(table_row(record).values())])

    def write_batch(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of values in ``COLUMNS`` order (None is an empty cell)."""
        self._csv.writerows(rows)
        self.count += len(rows)

    def write_arrow(self, batch: pa.RecordBatch) -> None:
        """A batch of ``COLUMNS`` (string, int64, float64), written as ``write_batch`` writes its
        rows' values, byte for byte, with the cells made by Arrow in C++ (``csv_lines``)."""
        text = self._file.file
        text.flush()  # what csv.writer wrote (the header) goes first
        text.buffer.write(csv_lines(batch))  # type: ignore[attr-defined]  # a TextIOWrapper
        self.count += batch.num_rows

    def close(self) -> None:
        self._file.commit()

    def abort(self) -> None:
        self._file.discard()


def csv_lines(batch: pa.RecordBatch) -> bytes:
    """The lines ``csv.writer`` (QUOTE_MINIMAL, ``\\r\\n``) writes for ``batch``'s rows.

    Integers are Arrow's decimal text, as ``str`` gives. Text is quoted when it holds a comma,
    a quote or a line break, quotes doubled. Reals are ``repr``'s text: Arrow's shortest
    round-trip digits are the same digits; where the two notations part (exponent ranges,
    ``25`` vs ``25.0``) the few cells are made by ``repr`` (``_real_text``). NULL is empty.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    cells, quoted = [], False
    for column, field in zip(batch.columns, batch.schema):
        if pa.types.is_floating(field.type):
            cells.append(_real_text(column))
        elif pa.types.is_integer(field.type):
            cells.append(column.cast(pa.string()))
        else:
            text, needs = _quoted_text(column)
            cells.append(text)
            quoted = quoted or needs
    if not quoted:  # the writer refuses quotes and separators in cells in this style
        table = pa.Table.from_arrays(cells, names=batch.schema.names)
        options = pacsv.WriteOptions(
            include_header=False, eol="\r\n", quoting_style="none", batch_size=65536
        )
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, options)
        return bytes(sink.getvalue())
    joined = pc.binary_join_element_wise(*[pc.fill_null(c, "") for c in cells], ",")
    return "".join(line + "\r\n" for line in joined.to_pylist()).encode("utf-8")


def _real_text(column: pa.Array) -> pa.Array:
    """``repr`` of each float64 (NULL stays NULL)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(column, pa.string())
    magnitude = pc.abs(column)
    # repr writes plain digits for 1e-4 <= |x| < 1e16 and Arrow writes them with no ".0" for
    # integral values; anything else (or where Arrow chose an exponent) repr makes itself
    whole = pc.fill_null(pc.and_(pc.equal(column, pc.floor(column)), pc.less(magnitude, 1e16)),
                         False)  # fmt: skip
    if pc.all(whole).as_py():
        text = pc.binary_join_element_wise(text, ".0", "")
    elif pc.any(whole).as_py():
        text = pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
    odd = pc.and_(
        pc.not_equal(column, 0.0),
        pc.or_(pc.greater_equal(magnitude, 1e16), pc.less(magnitude, 1e-4)),
    )
    if _any_byte(text, b"e"):  # Arrow chose an exponent somewhere (|x| >= 1e10, say)
        odd = pc.or_(pc.match_substring(text, "e"), odd)
    odd = pc.fill_null(odd, False)
    if pc.any(odd).as_py():
        made = [repr(x) for x in column.filter(odd).to_pylist()]
        text = pc.replace_with_mask(text, odd, pa.array(made, pa.string()))
    return text


def _any_byte(column: pa.Array, chars: bytes) -> bool:
    """Whether any byte of ``chars`` is in the bytes of ``column`` (a string array): a
    ``memchr`` over its data buffer, no per-cell search. NULL cells' bytes (Arrow allows them
    some) count too, so a True only sends the column to the exact per-cell check."""
    import numpy as np
    import pyarrow as pa

    _, offsets, data = column.buffers()
    if data is None or not len(column):
        return False
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    at = np.frombuffer(offsets, width)[column.offset : column.offset + len(column) + 1]
    text = memoryview(data)[int(at[0]) : int(at[-1])].tobytes()
    return any(text.find(c) >= 0 for c in chars)


def _quoted_text(column: pa.Array) -> tuple[pa.Array, bool]:
    """Text cells as ``csv.writer`` quotes them, and whether any needed quotes."""
    import pyarrow.compute as pc

    if not _any_byte(column, b',"\r\n'):
        return column, False
    needs = pc.fill_null(pc.match_substring_regex(column, '[,"\r\n]'), False)
    if not pc.any(needs).as_py():
        return column, False
    wrapped = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
    return pc.if_else(needs, wrapped, column), True


class ParquetWriter(WriterBase):
    """``manifest.parquet``, written in row groups so memory stays flat on 650k clips."""

    BATCH = 8192
    ROW_GROUP = 65536  # add_rows: rows per row group, as many as one export batch held

    def __init__(self, path: Path):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependencyError("pyarrow", "parquet") from None
        self._pa = pa
        types = {"TEXT": pa.string(), "INTEGER": pa.int64(), "REAL": pa.float64()}
        self.schema = pa.schema([(col, types[t]) for col, t in COLUMNS.items()])
        self.path = path
        self.count = 0
        self._file = AtomicFile(path, "wb")
        self._writer = pq.ParquetWriter(self._file.file, self.schema)
        self._batch: list[Sequence[Any]] = []
        self._pending: list[list[Any]] = []  # add_rows' arrays, one list per call
        self._pending_rows = 0

    def write(self, record: ExportRecord) -> None:
        self._batch.append(tuple(table_row(record).values()))
        if len(self._batch) >= self.BATCH:
            self._flush()

    def write_batch(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of values in ``COLUMNS`` order, written as one row group."""
        self._flush()
        self._batch = list(rows)
        self._flush()

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of values in ``COLUMNS`` order, made Arrow arrays now (so the Python rows can
        go) and written in row groups of ``ROW_GROUP`` rows; ``end_group`` writes the rest."""
        self._flush()
        self._pending.append(self._arrays(rows))
        self._pending_rows += len(rows)
        if self._pending_rows >= self.ROW_GROUP:
            self.end_group()

    def write_arrow(self, batch: pa.RecordBatch) -> None:
        """A record batch of ``self.schema``, taken as ``add_rows`` takes rows: row groups of
        ``ROW_GROUP`` rows (the batch split where one fills), ``end_group`` writes the rest."""
        self._flush()
        while batch.num_rows:
            room = self.ROW_GROUP - self._pending_rows
            head, batch = batch.slice(0, room), batch.slice(room)
            self._pending.append(list(head.columns))
            self._pending_rows += head.num_rows
            if self._pending_rows >= self.ROW_GROUP:
                self.end_group()

    def end_group(self) -> None:
        """Write the rows ``add_rows`` holds as one row group."""
        if self._pending:
            pa = self._pa
            columns = [pa.concat_arrays([chunk[i] for chunk in self._pending])
                       for i in range(len(self.schema))]  # fmt: skip
            self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
            self.count += self._pending_rows
            self._pending, self._pending_rows = [], 0

    def _arrays(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        return [
            self._pa.array(values, type=field.type)
            for values, field in zip(zip(*rows), self.schema)
        ]

    def _flush(self) -> None:
        if self._batch:
            columns = self._arrays(self._batch)
            self._writer.write_table(self._pa.Table.from_arrays(columns, schema=self.schema))
            self.count += len(self._batch)
            self._batch = []

    def close(self) -> None:
        self._flush()
        self.end_group()
        self._writer.close()
        self._file.commit()

    def abort(self) -> None:
        self._writer.close()
        self._file.discard()
