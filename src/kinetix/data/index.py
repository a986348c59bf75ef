"""Class indices of manifest rows and a compact clip index of a split, for the loaders.

Which rows are usable, and the SQL that reads them, is ``store/usable.py``; a root's ``meta``
is ``store/root.py`` (``RootInfo``). Both are re-exported here, where loaders and exporters
have imported them from.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinetix.errors import ConfigError, ManifestError
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.store.root import RootInfo
from kinetix.store.usable import (
    ColumnTypesDiffer,
    arrow_read_pays,
    count_left_out,
    describe_left_out,
    index_arrow,
    index_text,
    iter_usable,
    unindexed_labels,
    usable_rows,
    usable_selects,
    usable_states,
)

__all__ = [
    "UNLABELLED", "ClipEntry", "ClipIndex", "LabelIndexer", "PackedStrings", "RootInfo",
    "count_left_out", "describe_left_out", "iter_usable", "usable_rows", "usable_selects",
    "usable_states",
]  # fmt: skip

log = logging.getLogger(__name__)

UNLABELLED = -1  # class index of unlabelled (test) clips, as pytorchvideo and SlowFast expect


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
        self._order: np.ndarray | None = None  # item i is stored string _order[i]

    def ordered(self, order: np.ndarray) -> PackedStrings:
        """These strings, item ``i`` being the one stored at ``order[i]`` (nothing copied)."""
        packed = PackedStrings()
        packed._offsets, packed._buffer = self._offsets, self._buffer
        packed._order = order
        return packed

    def arrow(self) -> Any:
        """The stored strings (in stored order) as a pyarrow large_string array, not copied."""
        import pyarrow as pa

        return pa.LargeStringArray.from_buffers(
            len(self._offsets) - 1, pa.py_buffer(self._offsets), pa.py_buffer(self._buffer)
        )

    @classmethod
    def from_buffer(cls, data: bytearray, lengths: np.ndarray) -> PackedStrings:
        """Consecutive UTF-8 strings in ``data`` (taken over, not copied) of ``lengths`` bytes."""
        packed = cls()
        packed._offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=packed._offsets[1:])
        packed._buffer = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, np.uint8)
        return packed

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
        if self._order is not None:
            i = int(self._order[i])
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
    """The arrays of a ``ClipIndex``: read into Arrow (``index_arrow``) when pyarrow and
    adbc-driver-sqlite are there, else parsed from one aggregate over the usable rows."""
    if arrow_read_pays(manifest, row_release, split):
        try:
            read = _arrow_columns(manifest, split, release, include_unverified)
        except ColumnTypesDiffer as exc:
            log.info("%s; reading the clip index through SQL text instead", exc)
        else:
            _fill_label_index(manifest, read["labels"], split, row_release, release,
                              include_unverified)  # fmt: skip
            return read
    (
        count, keys, key_len, paths, path_len, label, n, fps, w, h, fast, lead
    ) = index_text(manifest, split, release, include_unverified=include_unverified)  # fmt: skip
    labels = _numbers(label, np.int64)
    _fill_label_index(manifest, labels, split, row_release, release, include_unverified)
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


def _fill_label_index(
    manifest: Manifest,
    labels: np.ndarray,
    split: str,
    row_release: str,
    release: str | None,
    include_unverified: bool,
) -> None:
    """Give the rows with a label but no stored index (-2) the registry's index, in place."""
    unindexed = np.flatnonzero(labels == -2)
    if len(unindexed):
        indexer = LabelIndexer()
        names = unindexed_labels(manifest, split, release, include_unverified=include_unverified)
        for i, name in zip(unindexed, names):
            labels[i] = indexer(row_release, name, None)


def _arrow_columns(
    manifest: Manifest, split: str, release: str | None, include_unverified: bool
) -> dict[str, Any]:
    """The arrays of a ``ClipIndex`` from one scan in table order (``index_arrow``),
    each batch copied into growing buffers (strings: their UTF-8 bytes and lengths) before the
    next, then put in manifest order (label, key; NULL labels first, bytes compared: SQLite's
    BINARY order) by Arrow: numbers taken in that order, strings kept as stored with the order
    beside them (``PackedStrings.ordered``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text: dict[str, bytearray] = {"key": bytearray(), "path": bytearray()}
    numbers: dict[str, list[np.ndarray]] = {"key": [], "path": []}  # strings: their lengths
    label_codes: list[Any] = []  # each batch's labels dictionary-encoded (a copy: see below)
    for batch in index_arrow(manifest, split, release, include_unverified=include_unverified):
        for name, column in zip(batch.schema.names, batch.columns):
            if name == "label":
                label_codes.append(pc.dictionary_encode(column))
            elif name in text:
                _, offsets, data = column.buffers()
                start = column.offset
                at = np.frombuffer(offsets, np.int32)[start : start + len(column) + 1]
                if data is not None:
                    text[name] += memoryview(data)[at[0] : at[-1]]
                numbers[name].append(np.diff(at).astype(np.int64))
            else:  # fps: NULL -> nan; copied: a view would keep ADBC's whole batch alive
                numbers.setdefault(name, []).append(np.array(column.to_numpy(zero_copy_only=False)))

    def joined(name: str, dtype: Any) -> np.ndarray:
        parts = numbers.pop(name, [])
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    keys = PackedStrings.from_buffer(text.pop("key"), joined("key", np.int64))
    paths = PackedStrings.from_buffer(text.pop("path"), joined("path", np.int64))
    # each label's rank among the labels (NULL: -1, first), then (rank, key) sorted by Arrow
    names = sorted({name for codes in label_codes for name in codes.dictionary.to_pylist()})
    rank = {name: i for i, name in enumerate(names)}
    ranks = [
        pc.fill_null(
            pc.take(pa.array([rank[n] for n in codes.dictionary.to_pylist()], pa.int32()),
                    codes.indices),
            -1,
        )
        for codes in label_codes
    ]  # fmt: skip
    del label_codes
    order = pc.sort_indices(
        pa.table({
            "label": pa.chunked_array(ranks, pa.int32()),
            "key": pa.chunked_array([keys.arrow()]),
        }),
        sort_keys=[("label", "ascending"), ("key", "ascending")],
    ).to_numpy()  # fmt: skip
    del ranks

    def taken(name: str, dtype: Any) -> np.ndarray:
        return joined(name, dtype)[order]

    return {
        "keys": keys.ordered(order),
        "paths": paths.ordered(order),
        "labels": taken("labels", np.int64),
        "num_frames": taken("num_frames", np.int64),
        "fps": taken("fps", np.float64),
        "sizes": np.stack([taken("width", np.int64), taken("height", np.int64)], axis=1),
        "fast_trim": taken("fast_trim", np.int64).astype(bool),
        "lead_seconds": taken("lead_seconds", np.float64),
    }
