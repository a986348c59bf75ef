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
    """Why rows are not used, by reason: a state (missing, failed, ...), unverified or bad."""
    sql = "SELECT state, verify, path IS NULL, COUNT(*) FROM clips WHERE 1=1"
    args: list[str] = []
    if split is not None:
        sql += " AND split=?"
        args.append(split)
    if release is not None:
        sql += " AND release=?"
        args.append(release)
    reasons: Counter[str] = Counter()
    for state, verify, no_path, n in manifest.execute(sql + " GROUP BY 1, 2, 3", args):
        if state != "present":
            reasons[state] += n
        elif verify == "bad":
            reasons["verified bad"] += n
        elif verify is None and not include_unverified:
            reasons["not verified"] += n
        elif no_path:
            reasons["no path"] += n
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
    cur = manifest.execute(
        f"SELECT {', '.join(columns)} FROM clips WHERE {' AND '.join(where)} "
        "ORDER BY split, label, key",
        args,
    )
    cur.row_factory = None  # type: ignore[assignment]  # tuples, not sqlite3.Row
    while rows := cur.fetchmany(batch):
        yield rows


class PackedStrings:
    """Many strings in one byte buffer plus offsets.

    A list of 650k Python strings gets copied page by page into every forked DataLoader
    worker as reference counts are touched; two numpy arrays are shared untouched.
    """

    def __init__(self, items: Sequence[str]):
        encoded = [s.encode("utf-8") for s in items]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
        self._buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

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
        keys: Sequence[str],
        paths: Sequence[str],
        labels: Sequence[int],
        num_frames: Sequence[int | None],
        fps: Sequence[float | None],
        sizes: Sequence[tuple[int | None, int | None]],
        fast_trim: Sequence[bool],
        left_out: Counter[str],
        lead_seconds: Sequence[float] | None = None,
    ):
        self.root = root
        self._keys = PackedStrings(keys)
        self._paths = PackedStrings(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_frames = np.array([-1 if n is None else n for n in num_frames], dtype=np.int64)
        self.fps = np.array([np.nan if f is None else f for f in fps], dtype=np.float64)
        self.sizes = np.array([(w or -1, h or -1) for w, h in sizes], dtype=np.int64).reshape(-1, 2)
        self.fast_trim = np.asarray(fast_trim, dtype=bool)
        self.lead_seconds = np.asarray(
            lead_seconds if lead_seconds is not None else np.zeros(len(self.labels)),
            dtype=np.float64,
        )
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
            indexer = LabelIndexer()
            cols: dict[str, list] = {
                k: [] for k in ("key", "path", "label", "n", "fps", "size", "fast", "lead")
            }
            for row in iter_usable(
                m, split=split, release=release, include_unverified=include_unverified
            ):
                cols["key"].append(row.key)
                cols["path"].append(row.path)
                cols["label"].append(indexer(row.release, row.label, row.values.get("label_index")))
                cols["n"].append(row.values.get("num_frames"))
                cols["fps"].append(row.values.get("fps"))
                cols["size"].append((row.values.get("width"), row.values.get("height")))
                cols["fast"].append(row.values.get("trim") == "fast")
                # start_offset = keyframe time - time_start (<= 0 for a fast trim)
                cols["lead"].append(max(-(row.values.get("start_offset") or 0.0), 0.0))
            left_out = count_left_out(
                m, split=split, release=release, include_unverified=include_unverified
            )
        if not cols["key"]:
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
        return cls(
            root, cols["key"], cols["path"], cols["label"], cols["n"], cols["fps"], cols["size"],
            cols["fast"], left_out, cols["lead"],
        )  # fmt: skip

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
