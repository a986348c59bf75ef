"""The row types stages read from a manifest, with the identity columns declared once.

``RowKey`` is what names one row (a row, a ``ClipUpdate``, a worker's task). ``WorkRow`` is
the lean row the download planner reads for a whole split (a tuple per clip, from one SQL
projection of ``WORK_COLUMNS``). The other row types extend that tuple with more items, so a
row is still one flat tuple made in C: a derived run's ``SourceClip`` (``process/derived.py``)
is a ``WorkRow`` and four columns more, ``ClipRow`` (``store/manifest.py``) a ``WorkRow`` and
``values``, every column but the identity ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple, Protocol


class RowKey(Protocol):
    """What names one manifest row: a row, an update, a worker's task."""

    @property
    def release(self) -> str: ...
    @property
    def split(self) -> str: ...
    @property
    def key(self) -> str: ...


class WorkRow(NamedTuple):
    """The few manifest columns planning needs (a full ClipRow per clip is too heavy at 650k).

    The first seven are the identity columns every row has (``ID_FIELDS``, in table order).
    """

    release: str
    split: str
    key: str
    youtube_id: str
    time_start: int
    time_end: int
    label: str | None
    state: str
    error_code: str | None
    source: str | None
    path: str | None


WORK_COLUMNS: tuple[str, ...] = WorkRow._fields
ID_FIELDS: tuple[str, ...] = WORK_COLUMNS[:7]

_work_row = partial(tuple.__new__, WorkRow)  # WorkRow._make without its Python frame


def work_rows_of(rows: Iterable[tuple[Any, ...]]) -> list[WorkRow]:
    """``WorkRow`` values of plain tuples of ``WORK_COLUMNS``, in C (no bytecode per row)."""
    return list(map(_work_row, rows))


def tuple_field(index: int) -> Any:
    """A read-only field at ``index`` of a tuple row, as a NamedTuple's fields are: for a type
    that extends a NamedTuple with more items (a NamedTuple cannot add fields to another)."""
    return property(itemgetter(index))
