"""The lean rows the download planner reads (``WorkRow``, ``store/rows.py``: a full ``ClipRow``
per clip is too heavy at 650k), and what a split's rows were registered from (the
``registered:{release}/{split}`` meta key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence, Set
from itertools import repeat
from operator import itemgetter
from typing import Any

from kinetix.catalog.clip import Clip
from kinetix.store.manifest import ClipState, Manifest
from kinetix.store.rows import WORK_COLUMNS, WorkRow, work_rows_of

_MISSING = ClipState.MISSING.value
# meta key of what a split's rows were registered from (see download.finished_rerun)
_REGISTERED = "registered:{}/{}"


def work_rows(
    manifest: Manifest, release: str, split: str, states: Iterable[str] | None = None
) -> list[WorkRow]:
    """The rows of ``release/split`` (only those in ``states`` when given), by key."""
    where = "release=? AND split=?"
    args: list[str] = [release, split]
    scan = True
    if states is not None:
        states = list(states)
        where += f" AND state IN ({','.join('?' * len(states))})"
        args += states
        # The clips_state index finds the few rows a rerun has; when the states are most of
        # the split (a fresh download: every row), one pass in table order is ~2x cheaper
        # than a hop from the index to the table per row.
        wanted = sum(manifest.split_size(release, split, state) for state in states)
        scan = wanted * 4 >= manifest.split_size(release, split)
    cur = manifest.execute(
        f"SELECT {', '.join(WORK_COLUMNS)} FROM clips{' NOT INDEXED' if scan else ''} "
        f"WHERE {where}",
        args,
    )
    cur.row_factory = None  # type: ignore[assignment]  # tuples, not sqlite3.Row
    rows = cur.fetchall()
    # sorted in Python: rows registered together are in key order already (add_clips), and
    # a sort of sorted input is one pass
    rows.sort(key=itemgetter(2))
    return work_rows_of(rows)


def registered_rows(clips: Sequence[Clip], keys: Sequence[str]) -> list[WorkRow]:
    """The work rows of ``clips`` just registered as a split's first rows, as ``work_rows``
    would read them back: state missing, nothing else set, by key."""
    releases, splits, ids, starts, ends, labels, _, _ = zip(*clips)
    n = len(clips)
    rows = work_rows_of(
        zip(releases, splits, keys, ids, starts, ends, labels, repeat(_MISSING, n),
            repeat(None, n), repeat(None, n), repeat(None, n))
    )  # fmt: skip
    # in place, stably: one pass when the clips came in key order (download.register_selection)
    rows.sort(key=itemgetter(2))
    return rows


def selected_rows(
    manifest: Manifest, release: str, split: str, keys: Set[str], states: Iterable[str]
) -> list[WorkRow]:
    """The selected rows (``keys``) in ``states``: a rerun reads the few not present, not all."""
    rows = work_rows(manifest, release, split, states)
    if len(keys) == manifest.split_size(release, split):
        return rows  # every selected key is registered: the selection is the whole split
    return [r for r in rows if r.key in keys]


def recorded_registration(manifest: Manifest, release: str, split: str) -> Any:
    """What ``record_registration`` last stored for the split (None: nothing, or not reusable)."""
    meta = manifest.get_meta(_REGISTERED.format(release, split))
    return json.loads(meta) if meta else None


def record_registration(manifest: Manifest, release: str, split: str, value: Any) -> None:
    """Store ``value`` (JSON) as what the split's rows were registered from."""
    manifest.set_meta(_REGISTERED.format(release, split), json.dumps(value))
