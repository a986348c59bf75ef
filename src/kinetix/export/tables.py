"""The manifest's usable rows as one CSV or Parquet table (label_index filled in)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kinetix.errors import MissingDependencyError
from kinetix.export.atomic import AtomicFile
from kinetix.export.records import ExportRecord, WriterBase
from kinetix.store.manifest import CLIP_COLUMNS, ID_COLUMNS

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

    def close(self) -> None:
        self._file.commit()

    def abort(self) -> None:
        self._file.discard()


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
