"""AVA-Kinetics and Countix rows of a K700-2020 root: each row's clip, present or why not.

A root made by ``kinetix download countix|ava-kinetics`` is an ordinary K700-2020 videos root
(``meta.release`` = ``k700-2020``; its ``clips`` rows are K700-2020 clips) that also records:

- ``meta.downstream``: the annotation set, ``countix`` or ``ava-kinetics``;
- ``meta.downstream_split``: the set's splits downloaded into it, comma-separated in the
  order they were first downloaded (``val``, or ``val,train``);
- table ``downstream_rows``: one row per annotation row of those splits (``line`` is its line
  in the annotation file, the file a copy of which is kept at
  ``ROOT/.kinetix/downstream/{member}``), with the K700-2020 clip ``key`` it resolves to
  (``base_split`` is that clip's split, the same name) or ``reason`` why none: ``no_clip``,
  ``no_video``, ``outside_clips`` (``catalog/resolve.py``), or a rejected row's code
  (``box_outside_unit``, ``span_outside_clip`` ... ``catalog/downstream.py``), then
  ``rejected`` = 1.

Whether a resolved row's clip is on disk is not copied into ``downstream_rows``: it is read
from the clip's own row through a join, so a clip placed, failed or quarantined later (a
rerun, ``verify``) is reflected at once. ``downstream_rows()`` is that read model.
"""

from __future__ import annotations

import filecmp
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kinetix.errors import ConfigError

if TYPE_CHECKING:
    from kinetix.store.manifest import Manifest

DOWNSTREAM_META = "downstream"
DOWNSTREAM_SPLIT_META = "downstream_split"
DOWNSTREAM_DIR = "downstream"  # ROOT/.kinetix/downstream/: copies of the annotation files
# meta, per split: fingerprint of the two files its rows were resolved from (a rerun with the
# same files does not record them again)
RECORDED_META = "downstream_recorded:{}"

# Created by Manifest._create (schema 3); a root from before has none and reads as not
# downstream.
DOWNSTREAM_ROWS_DDL = (
    "CREATE TABLE IF NOT EXISTS downstream_rows (release TEXT NOT NULL, split TEXT NOT NULL, "
    "line INTEGER NOT NULL, youtube_id TEXT NOT NULL, base_split TEXT NOT NULL, key TEXT, "
    "reason TEXT, rejected INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (release, split, line)) "
    "WITHOUT ROWID"
)

# Row states the read model gives besides the clip states (present, missing, failed,
# quarantined): the row has no clip, or its clip is not in this root's selection.
UNRESOLVED = "unresolved"  # no K700-2020 clip holds it (reason: no_clip, no_video, outside_clips)
REJECTED = "rejected"  # the row itself was kept out when read (reason: its code)
NOT_SELECTED = "not_selected"  # resolves, but the clip is not a row of this root


class DownstreamInfo(NamedTuple):
    """What ``downstream_info`` reads: the annotation set and its splits in this root."""

    release: str  # countix | ava-kinetics
    splits: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolvedRow:
    """One annotation row as recorded: its line, and its clip key or the reason for none."""

    line: int
    youtube_id: str
    key: str | None
    reason: str | None  # None when ``key`` is set
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class DownstreamRow:
    """One annotation row of a root and the state of its K700-2020 clip (the read model).

    ``state`` is the clip's (``present``, ``missing``, ``failed``, ``quarantined``) or
    ``unresolved`` / ``rejected`` / ``not_selected``. ``reason`` says why it is not present:
    the resolution's or rejection's code, the clip's ``error_code`` when it failed, ``None``
    when present or merely not fetched yet. The clip columns (``path`` relative to the root,
    ``time_start``, ``fps``, ``start_offset``, ``num_frames``) are None without a clip row.
    """

    release: str
    split: str
    line: int
    youtube_id: str
    key: str | None
    state: str
    reason: str | None
    path: str | None
    time_start: int | None
    time_end: int | None
    fps: float | None
    start_offset: float | None
    num_frames: int | None
    width: int | None
    height: int | None

    @property
    def present(self) -> bool:
        return self.state == "present" and bool(self.path)


def downstream_info(manifest: Manifest) -> DownstreamInfo | None:
    """The annotation set recorded in this root's meta, or None for a plain Kinetics root."""
    return downstream_from_meta(manifest.meta())


def downstream_from_meta(meta: Mapping[str, str]) -> DownstreamInfo | None:
    """``downstream_info`` of a root's ``meta`` table already read (``store/root.py``)."""
    release = meta.get(DOWNSTREAM_META)
    if not release:
        return None
    splits = meta.get(DOWNSTREAM_SPLIT_META) or ""
    return DownstreamInfo(release, tuple(s for s in splits.split(",") if s))


def recorded_fingerprint(manifest: Manifest, split: str) -> str | None:
    """What ``split``'s rows were last recorded from (``set_recorded_fingerprint``)."""
    return manifest.get_meta(RECORDED_META.format(split))


def set_recorded_fingerprint(manifest: Manifest, split: str, fingerprint: str) -> None:
    manifest.set_meta(RECORDED_META.format(split), fingerprint)


def check_downstream(manifest: Manifest, release: str, root: str | Path) -> None:
    """Refuse to put ``release``'s rows in a root that holds another set's."""
    info = downstream_info(manifest)
    if info is not None and info.release != release:
        raise ConfigError(
            f"{root} holds {info.release} ({', '.join(info.splits)}), not {release}; "
            "use another --root"
        )


def record_downstream(
    manifest: Manifest,
    release: str,
    split: str,
    rows: Iterable[ResolvedRow],
    *,
    base_split: str | None = None,
) -> int:
    """Record (replacing any earlier record) every row of ``release/split``; returns the count.

    Also sets ``meta.downstream`` and appends ``split`` to ``meta.downstream_split``.
    """
    base = base_split or split
    with manifest.transaction() as db:
        db.execute("DELETE FROM downstream_rows WHERE release=? AND split=?", (release, split))
        count = db.executemany(
            "INSERT INTO downstream_rows VALUES (?,?,?,?,?,?,?,?)",
            (
                (release, split, r.line, r.youtube_id, base, r.key, r.reason, int(r.rejected))
                for r in rows
            ),
        ).rowcount
    info = downstream_info(manifest)
    splits = info.splits if info is not None else ()
    manifest.set_meta(DOWNSTREAM_META, release)
    if split not in splits:
        manifest.set_meta(DOWNSTREAM_SPLIT_META, ",".join((*splits, split)))
    return max(count, 0)


def copy_downstream(source: Manifest, dest: Manifest) -> int:
    """Give a root made from ``source`` (``process``, ``frames``) the same annotation rows.

    The derived root keeps the source's clip keys, so the rows read its own clips' states and
    paths. Splits whose rows are already there from the same files are left alone; returns
    the rows copied.
    """
    info = downstream_info(source)
    if info is None or not _has_rows_table(source):
        return 0
    copied = 0
    for split in info.splits:
        fingerprint = recorded_fingerprint(source, split) or ""
        have = recorded_rows(dest, info.release, split)
        if have and recorded_fingerprint(dest, split) == fingerprint:
            continue
        cur = source.execute(
            "SELECT line, youtube_id, key, reason, rejected FROM downstream_rows "
            "WHERE release=? AND split=?",
            (info.release, split),
        )
        cur.row_factory = None  # type: ignore[assignment]
        rows = [
            ResolvedRow(line, yid, key, why, bool(rejected))
            for line, yid, key, why, rejected in cur
        ]
        copied += record_downstream(dest, info.release, split, rows)
        set_recorded_fingerprint(dest, split, fingerprint)
    return copied


def recorded_rows(manifest: Manifest, release: str, split: str) -> int:
    """How many rows of ``release/split`` the root records (0 without the table)."""
    if not _has_rows_table(manifest):
        return 0
    row = manifest.execute(
        "SELECT COUNT(*) FROM downstream_rows WHERE release=? AND split=?", (release, split)
    ).fetchone()
    return int(row[0])


def _has_rows_table(manifest: Manifest) -> bool:
    row = manifest.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='downstream_rows'"
    ).fetchone()
    return row is not None


_ROWS_SQL = (
    "SELECT d.release, d.split, d.line, d.youtube_id, d.key, d.reason, d.rejected, "
    "c.state, c.error_code, c.path, c.time_start, c.time_end, c.fps, c.start_offset, "
    "c.num_frames, c.width, c.height FROM downstream_rows d LEFT JOIN clips c "
    "ON c.release=? AND c.split=d.base_split AND c.key=d.key"
)


def downstream_rows(
    manifest: Manifest, split: str | None = None, *, base_release: str | None = None
) -> Iterator[DownstreamRow]:
    """Every recorded annotation row (of ``split``), in (split, line) order, with its clip.

    A root without the table (made before schema 3, or never a downstream root) yields none.
    """
    if not _has_rows_table(manifest):
        return
    base = base_release or manifest.get_meta("release") or "k700-2020"
    sql, args = _ROWS_SQL, [base]
    if split is not None:
        sql += " WHERE d.split=?"
        args.append(split)
    cur = manifest.execute(sql + " ORDER BY d.split, d.line", args)
    cur.row_factory = None  # type: ignore[assignment]
    for (
        release, dsplit, line, youtube_id, key, reason, rejected,
        state, error_code, path, t0, t1, fps, offset, frames, width, height,
    ) in cur:  # fmt: skip
        row_state, why = _row_state(key, reason, rejected, state, error_code)
        yield DownstreamRow(
            release, dsplit, line, youtube_id, key, row_state, why, path,
            t0, t1, fps, offset, frames, width, height,
        )  # fmt: skip


def _row_state(
    key: str | None, reason: str | None, rejected: int, state: str | None, error_code: str | None
) -> tuple[str, str | None]:
    """A row's (state, reason) from its record and its clip's row (see ``DownstreamRow``)."""
    if rejected:
        return REJECTED, reason
    if key is None:
        return UNRESOLVED, reason
    if state is None:
        return NOT_SELECTED, None
    return state, error_code if state in ("failed", "quarantined") else None


@dataclass
class DownstreamSplitCounts:
    """Per split: rows, present, and the rest by (state, reason)."""

    release: str
    split: str
    rows: int = 0
    present: int = 0
    missing: Counter[tuple[str, str | None]] | None = None  # (state, reason) -> rows

    def not_present(self) -> int:
        return self.rows - self.present

    def reasons(self) -> dict[str, int]:
        """Rows not present by reason, most first: ``no_clip``, ``no_video``,
        ``outside_clips``, ``rejected:CODE``, ``failed:CODE`` (the clip's error code),
        ``quarantined:CODE``, ``not_fetched`` (the clip is still to fetch), ``not_selected``."""
        out: Counter[str] = Counter()
        for (state, reason), n in (self.missing or {}).items():
            out[reason_label(state, reason)] += n
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def reason_label(state: str, reason: str | None) -> str:
    """One stable word for why a row's clip is not present (see ``reasons``)."""
    if state == UNRESOLVED:
        return reason or "unresolved"
    if state in (REJECTED, "failed", "quarantined"):
        return f"{state}:{reason or 'unknown'}"
    if state == "missing":
        return "not_fetched"
    return state


def downstream_counts(manifest: Manifest, split: str | None = None) -> list[DownstreamSplitCounts]:
    """What ``status`` shows for a downstream root, one entry per split (none otherwise).

    Counted in SQL, grouped by what decides a row's state: a million AVA rows stay cheap.
    """
    if not _has_rows_table(manifest):
        return []
    sql = (
        "SELECT d.release, d.split, d.key IS NULL, d.reason, d.rejected, c.state, c.error_code, "
        "c.state='present' AND coalesce(c.path, '') <> '', COUNT(*) FROM downstream_rows d "
        "LEFT JOIN clips c ON c.release=? AND c.split=d.base_split AND c.key=d.key"
    )
    args = [manifest.get_meta("release") or "k700-2020"]
    if split is not None:
        sql += " WHERE d.split=?"
        args.append(split)
    counts: dict[tuple[str, str], DownstreamSplitCounts] = {}
    for release, dsplit, no_key, reason, rejected, state, code, present, n in manifest.execute(
        sql + " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8", args
    ):
        entry = counts.get((release, dsplit))
        if entry is None:
            entry = counts[(release, dsplit)] = DownstreamSplitCounts(
                release, dsplit, missing=Counter()
            )
        entry.rows += n
        if present:
            entry.present += n
        else:
            assert entry.missing is not None
            entry.missing[_row_state(None if no_key else "", reason, rejected, state, code)] += n
    return [counts[k] for k in sorted(counts)]


def keep_copy(source: Path, dest: Path) -> None:
    """Copy an annotation file into a root (atomically), unless the same bytes are there; a
    source that is not there (a root made before the copies were kept) is skipped."""
    if not source.is_file() or (dest.exists() and filecmp.cmp(source, dest, shallow=False)):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.kx-part")
    shutil.copyfile(source, tmp)
    tmp.replace(dest)


def annotation_copy(root: str | Path, member: str) -> Path:
    """``ROOT/.kinetix/downstream/{member}``: the annotation file a root's rows were read from."""
    from kinetix.store.layout import state_dir

    return state_dir(root) / DOWNSTREAM_DIR / Path(member).name


def clip_facts(
    manifest: Manifest, release: str, split: str
) -> dict[str, tuple[str | None, int | None, str | None]]:
    """key -> (label, label_index, verify) of a split's clips: what the Countix/AVA-Kinetics
    exports and loaders need beside ``downstream_rows`` (the class, whether verified good)."""
    cur = manifest.execute(
        "SELECT key, label, label_index, verify FROM clips WHERE release=? AND split=?",
        (release, split),
    )
    return {key: (label, index, verify) for key, label, index, verify in cur}
