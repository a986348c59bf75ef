"""``--format countix``: one table per split (CSV and Parquet) of Countix rows on their clip files.

A row per usable annotation row: the clip's path, the class, the count, and the repetition
span in seconds from the clip file's first frame and in frame indices of that file (start
inclusive, end exclusive) at its recorded fps, the fast-trim lead-in included
(``catalog/relative.py``). The source row's own numbers stay beside them (``line``,
``repetition_start``/``end`` in video seconds) so any value can be checked against the file.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from kinetix.data.downstream import CountixItem
from kinetix.export.atomic import AtomicFile
from kinetix.export.records import OutputBase

log = logging.getLogger(__name__)

# column -> Parquet type
COUNTIX_COLUMNS: dict[str, str] = {
    "path": "string", "label": "string", "label_index": "int64", "count": "int64",
    "start_seconds": "float64", "end_seconds": "float64",
    "start_frame": "int64", "end_frame": "int64", "fps": "float64", "num_frames": "int64",
    "youtube_id": "string", "key": "string", "line": "int64",
    "repetition_start": "float64", "repetition_end": "float64", "start_offset": "float64",
}  # fmt: skip


def countix_row(item: CountixItem, base: str) -> tuple[Any, ...]:
    """One table row (``COUNTIX_COLUMNS`` order); ``base`` prefixes the path ('' or ROOT/)."""
    span, clip, row = item.span, item.clip, item.row
    return (
        base + clip.path, item.label, clip.label_index, span.count,
        round(span.start_seconds, 6), round(span.end_seconds, 6), span.start_frame, span.end_frame,
        clip.timing.fps, clip.num_frames, row.youtube_id, clip.key, row.line,
        row.repetition_start, row.repetition_end, clip.timing.start_offset,
    )  # fmt: skip


class CountixTableWriter(OutputBase):
    """``countix_{split}.csv`` and, with pyarrow, ``countix_{split}.parquet``; both atomic."""

    def __init__(self, out: Path, split: str, *, base: str = "", parquet: bool = True):
        self.split = split
        self.base = base
        self.path = out / f"countix_{split}.csv"
        self.parquet_path: Path | None = out / f"countix_{split}.parquet" if parquet else None
        self.count = 0
        self._rows: list[tuple[Any, ...]] = []
        self._csv_file = AtomicFile(self.path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file.file, lineterminator="\n")
        self._csv.writerow(COUNTIX_COLUMNS)

    def write(self, item: CountixItem) -> None:
        row = countix_row(item, self.base)
        self._csv.writerow("" if v is None else v for v in row)
        if self.parquet_path is not None:
            self._rows.append(row)  # Countix splits are a few thousand rows
        self.count += 1

    def close(self) -> None:
        self._csv_file.commit()
        if self.parquet_path is not None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([(c, getattr(pa, t)()) for c, t in COUNTIX_COLUMNS.items()])
            columns = list(zip(*self._rows)) if self._rows else [() for _ in COUNTIX_COLUMNS]
            table = pa.Table.from_arrays(
                [pa.array(list(v), type=f.type) for v, f in zip(columns, schema)], schema=schema
            )
            file = AtomicFile(self.parquet_path, "wb")
            try:
                pq.write_table(table, file.file)
            except BaseException:
                file.discard()
                raise
            file.commit()

    def abort(self) -> None:
        self._csv_file.discard()
