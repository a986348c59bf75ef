"""A dataset root as one object: its lock, write check, manifest and typed ``meta``.

``ROOT/.kinetix/manifest.sqlite``'s ``meta`` table says what a root is. Its keys are read here
and nowhere else by name:

- ``kind``: ``videos`` (``download``, or ``process`` output) or ``frames``; absent = videos;
- ``release``, ``layout`` (a ``LabelStyle``), ``mirror`` (the base URL a download used);
- ``settings``: JSON of what a ``process``/``frames`` run (or a fused download) made it with;
- ``source_root``: the root a derived dataset (``process``, ``frames``) was made from;
- ``downstream``, ``downstream_split``: the AVA-Kinetics/Countix rows a root holds
  (``store/downstream.py`` owns their table).

A derived root is one with a ``source_root``; ``RootMeta.role`` names the three roles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType

from kinetix.catalog.labels import LabelStyle
from kinetix.durable import require_writable
from kinetix.errors import ConfigError
from kinetix.store.downstream import DownstreamInfo, downstream_from_meta
from kinetix.store.layout import manifest_path, state_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import ClipRow, Manifest


class RootKind(str, Enum):
    """What a root's clips are (``meta.kind``)."""

    VIDEOS = "videos"  # MP4 clips: downloaded, or made by ``process``
    FRAMES = "frames"  # a folder of JPEGs per clip (``frames``)


# the keys RootMeta reads and write_root_meta writes
META_KEYS = ("kind", "release", "layout", "mirror", "settings", "source_root")


@dataclass(frozen=True)
class RootMeta:
    """The typed ``meta`` of one root; a key never recorded is None."""

    recorded_kind: str | None = None  # ``kind`` as written; None in a root not yet given one
    release: str | None = None
    layout: str | None = None
    mirror: str | None = None
    settings: str | None = None  # JSON, compared as text: it is written sorted
    source_root: str | None = None
    downstream: DownstreamInfo | None = None

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> RootMeta:
        return cls(
            recorded_kind=meta.get("kind"),
            release=meta.get("release"),
            layout=meta.get("layout"),
            mirror=meta.get("mirror"),
            settings=meta.get("settings"),
            source_root=meta.get("source_root"),
            downstream=downstream_from_meta(meta),
        )

    @classmethod
    def read(cls, manifest: Manifest) -> RootMeta:
        return cls.from_meta(manifest.meta())

    @property
    def kind(self) -> str:
        """``videos`` or ``frames``: a root that records none holds videos."""
        return self.recorded_kind or RootKind.VIDEOS.value

    @property
    def is_videos(self) -> bool:
        return self.kind == RootKind.VIDEOS.value

    @property
    def is_frames(self) -> bool:
        return self.kind == RootKind.FRAMES.value

    @property
    def derived(self) -> bool:
        """Made from another root by ``process`` or ``frames``."""
        return self.source_root is not None

    @property
    def role(self) -> str:
        """``videos`` (downloaded), ``derived`` (``process`` output) or ``frames``."""
        if self.is_frames:
            return RootKind.FRAMES.value
        return "derived" if self.derived else RootKind.VIDEOS.value

    @property
    def label_style(self) -> LabelStyle:
        """The root's folder layout; ``raw`` when none was recorded."""
        return LabelStyle.parse(self.layout or LabelStyle.RAW.value)


def write_root_meta(manifest: Manifest, **values: str | None) -> None:
    """Record the given ``META_KEYS`` (a None value is left as it is)."""
    unknown = set(values) - set(META_KEYS)
    if unknown:
        raise ValueError(f"unknown root meta keys {sorted(unknown)}")
    for key, value in values.items():
        if value is not None:
            manifest.set_meta(key, value)


@dataclass(frozen=True)
class RootInfo:
    """What a dataset root's manifest says about itself (``meta`` table), for loaders/exports."""

    root: Path
    kind: str  # videos | frames
    release: str | None
    layout: str | None

    @classmethod
    def read(cls, root: str | Path) -> RootInfo:
        with DatasetRoot.open(root) as ds:
            meta = ds.meta
        return cls(Path(root), meta.kind, meta.release, meta.layout)

    def require(self, kind: str, hint: str) -> None:
        if self.kind != kind:
            raise ConfigError(f"{self.root} is a {self.kind} root, not a {kind} root; {hint}")


class DatasetRoot:
    """One dataset root: ``DatasetRoot.open(path)`` reads it (no lock, any mount);
    ``DatasetRoot.open(path, write=True)`` takes its lock and opens its manifest for writing
    (``fix`` first proves ``.kinetix`` writable, naming what to do, before anything is made).

    Use it as a context manager; ``close`` releases the manifest, then the lock.
    """

    def __init__(self, path: str | Path, manifest: Manifest, lock: RootLock | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self._lock = lock
        self._meta: RootMeta | None = None

    @classmethod
    def open(cls, path: str | Path, *, write: bool = False, fix: str | None = None) -> DatasetRoot:
        path = Path(path)
        if not write:
            return cls(path, Manifest(manifest_path(path), readonly=True))
        if fix is not None:
            require_writable(state_dir(path), str(path), fix)
        lock = RootLock(path).acquire()
        try:
            manifest = Manifest(manifest_path(path))
        except BaseException:
            lock.release()
            raise
        return cls(path, manifest, lock)

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def meta(self) -> RootMeta:
        """The root's typed meta, read once (and again after ``record``)."""
        if self._meta is None:
            self._meta = RootMeta.read(self.manifest)
        return self._meta

    def record(self, **values: str | None) -> None:
        """Write ``meta`` keys (``kind=``, ``release=``, ...); None values are left alone."""
        write_root_meta(self.manifest, **values)
        self._meta = None

    # -- read models ---------------------------------------------------------------------
    def usable_clips(
        self,
        *,
        split: str | None = None,
        release: str | None = None,
        include_unverified: bool = False,
    ) -> Iterator[ClipRow]:
        """The rows loaders and exporters use (``store.usable.iter_usable``)."""
        from kinetix.store.usable import iter_usable

        return iter_usable(
            self.manifest, split=split, release=release, include_unverified=include_unverified
        )

    def counts_by_state(
        self, *, split: str | None = None, release: str | None = None
    ) -> Counter[str]:
        """Clips per ``state``, from the manifest's counters."""
        counts: Counter[str] = Counter()
        for row in self.manifest.clip_counts():
            row_release, row_split, _, state, *_, n, _ = row
            if (split is None or row_split == split) and (
                release is None or row_release == release
            ):
                counts[state] += n
        return counts

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.manifest.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> DatasetRoot:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_root_meta(root: str | Path) -> RootMeta:
    """A root's typed meta, read through a read-only open."""
    with DatasetRoot.open(root) as ds:
        return ds.meta
