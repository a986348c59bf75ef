"""Which manifest rows loaders and exporters use, their class indices, and a compact clip index."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinetix.errors import ConfigError, ManifestError
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import CLIP_COLUMNS, ID_COLUMNS, ClipRow, Manifest

log = logging.getLogger(__name__)

UNLABELLED = -1  # class index of unlabelled (test) clips, as pytorchvideo and SlowFast expect


@dataclass(frozen=True)
class RootInfo:
    """What a dataset root's manifest says about itself (``meta`` table)."""

    root: Path
    kind: str  # videos | frames
    release: str | None
    layout: str | None

    @classmethod
    def read(cls, root: str | Path) -> RootInfo:
        root = Path(root)
        with Manifest(manifest_path(root), readonly=True) as m:
            kind = m.get_meta("kind") or "videos"
            return cls(root, kind, m.get_meta("release"), m.get_meta("layout"))

    def require(self, kind: str, hint: str) -> None:
        if self.kind != kind:
            raise ConfigError(f"{self.root} is a {self.kind} root, not a {kind} root; {hint}")


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


class LabelIndexer:
    """Class index of a row: the stored ``label_index``, else the release's label registry."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], int] = {}

    def __call__(self, release: str, label: str | None, stored: int | None) -> int:
        if label is None:
            return UNLABELLED
        if stored is not None:
            return int(stored)
        key = (release, label)
        if key not in self._cache:
            # imported here: the registry reads packaged label maps, which only some rows need
            from kinetix.catalog.labels import LabelRegistry

            self._cache[key] = LabelRegistry.for_release(release).index(label)
        return self._cache[key]


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


class PackedStrings:
    """Many strings in one byte buffer plus offsets.

    A list of 650k Python strings gets copied page by page into every forked DataLoader
    worker as reference counts are touched; two numpy arrays are shared untouched.
    """

    def __init__(self, items: Sequence[str] = ()):
        encoded = [s.encode("utf-8") for s in items]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
        self._buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    @classmethod
    def from_chunks(cls, chunks: Sequence[tuple[bytes, np.ndarray]]) -> PackedStrings:
        """Join (utf-8 bytes of consecutive strings, their byte lengths) chunks, no str per item."""
        packed = cls()
        lengths = np.concatenate([n for _, n in chunks]) if chunks else np.zeros(0, np.int64)
        packed._offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=packed._offsets[1:])
        packed._buffer = np.frombuffer(b"".join(b for b, _ in chunks), dtype=np.uint8)
        if packed._offsets[-1] != len(packed._buffer):
            raise ValueError("string lengths do not add up to the buffer")
        return packed

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:
        start, end = self._offsets[i], self._offsets[i + 1]
        return self._buffer[start:end].tobytes().decode("utf-8")


@dataclass(frozen=True)
class ClipEntry:
    """One clip of a ``ClipIndex``; ``num_frames``/``fps``/sizes are ``None`` when not recorded."""

    key: str
    path: Path
    label: int
    num_frames: int | None
    fps: float | None
    width: int | None
    height: int | None
    fast_trim: bool
    lead_seconds: float = 0.0  # a fast trim starts this long before time_start (keyframe)


class ClipIndex:
    """The usable clips of one split, read once from the manifest into numpy arrays.

    Nothing here holds a database connection, so the index pickles into DataLoader workers.
    """

    def __init__(
        self,
        root: Path,
        *,
        keys: PackedStrings,
        paths: PackedStrings,
        labels: np.ndarray,  # class index, -1 unlabelled
        num_frames: np.ndarray,  # -1: not recorded
        fps: np.ndarray,  # nan: not recorded
        sizes: np.ndarray,  # [N, 2] width, height; -1: not recorded
        fast_trim: np.ndarray,
        lead_seconds: np.ndarray,
        left_out: Counter[str],
    ):
        self.root = root
        self._keys = keys
        self._paths = paths
        self.labels = labels
        self.num_frames = num_frames
        self.fps = fps
        self.sizes = sizes
        self.fast_trim = fast_trim
        self.lead_seconds = lead_seconds
        self.left_out = left_out

    @classmethod
    def load(
        cls,
        root: str | Path,
        split: str,
        *,
        release: str | None = None,
        include_unverified: bool = False,
    ) -> ClipIndex:
        root = Path(root)
        with Manifest(manifest_path(root), readonly=True) as m:
            releases = sorted({r for r, s in m.splits() if s == split})
            if not releases:
                known = ", ".join(sorted({s for _, s in m.splits()})) or "none"
                raise ConfigError(f"{root} has no split {split!r}; its splits are {known}")
            if release is None and len(releases) > 1:
                raise ConfigError(
                    f"{root} holds split {split!r} of several releases ({', '.join(releases)}); "
                    "pass release="
                )
            columns = _load_columns(
                m, split, release or releases[0], release, include_unverified=include_unverified
            )
            left_out = count_left_out(
                m, split=split, release=release, include_unverified=include_unverified
            )
        if not len(columns["labels"]):
            raise ManifestError(
                f"{root} has no usable clips in split {split!r}"
                + (f" (left out: {describe_left_out(left_out)})" if left_out else "")
                + ("; pass include_unverified=True to use clips never verified" if
                   left_out.get("not verified") else "")
            )  # fmt: skip
        if left_out:
            log.warning(
                "%s/%s: left out %d clips: %s", root, split, sum(left_out.values()),
                describe_left_out(left_out),
            )  # fmt: skip
        return cls(root, left_out=left_out, **columns)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> ClipEntry:
        n, fps = int(self.num_frames[i]), float(self.fps[i])
        w, h = (int(v) for v in self.sizes[i])
        return ClipEntry(
            key=self._keys[i],
            path=self.root / self._paths[i],
            label=int(self.labels[i]),
            num_frames=n if n > 0 else None,
            fps=fps if np.isfinite(fps) and fps > 0 else None,
            width=w if w > 0 else None,
            height=h if h > 0 else None,
            fast_trim=bool(self.fast_trim[i]),
            lead_seconds=float(self.lead_seconds[i]),
        )


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


def _numbers(text: str | None, dtype: Any) -> np.ndarray:
    """Comma-separated numbers (as group_concat writes them) as an array, parsed in C."""
    if not text:
        return np.zeros(0, dtype=dtype)
    return np.fromstring(text, dtype=dtype, sep=",")  # text mode: parsed in C, not deprecated


def _load_columns(
    manifest: Manifest,
    split: str,
    row_release: str,
    release: str | None,
    *,
    include_unverified: bool,
) -> dict[str, Any]:
    """The arrays of a ``ClipIndex``: one aggregate over the usable rows in index order.

    The aggregate reads a subquery with ORDER BY; SQLite never flattens such a subquery
    into an aggregate, so rows arrive in that order (tests compare with a row-by-row read).
    """
    ordered, args = _usable_sql(_INDEX_COLUMNS, split, release, include_unverified)
    row = manifest.execute(f"SELECT {', '.join(_INDEX_AGGREGATES)} FROM ({ordered})", args)
    count, keys, key_len, paths, path_len, label, n, fps, w, h, fast, lead = row.fetchone()
    labels = _numbers(label, np.int64)
    unindexed = np.flatnonzero(labels == -2)
    if len(unindexed):
        indexer = LabelIndexer()
        names = manifest.execute(
            f"SELECT label FROM ({ordered}) WHERE label IS NOT NULL AND label_index IS NULL", args
        ).fetchall()
        for i, (name,) in zip(unindexed, names):
            labels[i] = indexer(row_release, name, None)
    columns: dict[str, Any] = {
        "keys": PackedStrings.from_chunks(
            [((keys or "").encode("utf-8"), _numbers(key_len, np.int64))]
        ),
        "paths": PackedStrings.from_chunks(
            [((paths or "").encode("utf-8"), _numbers(path_len, np.int64))]
        ),
        "labels": labels,
        "num_frames": _numbers(n, np.int64),
        "fps": _numbers(fps, np.float64),
        "sizes": np.stack([_numbers(w, np.int64), _numbers(h, np.int64)], axis=1),
        "fast_trim": _numbers(fast, np.int64).astype(bool),
        "lead_seconds": _numbers(lead, np.float64),
    }
    if any(len(v) != count for v in columns.values()):
        # one SELECT reads one snapshot, so this is a bug, not a race
        raise ManifestError(f"the clip index of {split!r} does not add up to its {count} rows")
    return columns
