"""The download job: plan the clips a root is missing, fetch them from CVDF and/or YouTube, record.

catalog -> manifest rows (one per selected clip) -> work (missing, quarantined, failed on request)
-> CVDF shard tasks (then, for K400, the replacement set) -> YouTube clip tasks for what is still
missing (``--source youtube|auto``) -> each result applied to the manifest by this one process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kinetix.bulk import paused_gc, rows_kept
from kinetix.catalog.clip import clip_keys
from kinetix.catalog.downstream import downstream_name
from kinetix.catalog.releases import Release, check_split, get_release
from kinetix.config import DownloadConfig, Selection, SourceKind
from kinetix.durable import require_writable
from kinetix.errors import ConfigError
from kinetix.interrupts import stop_on_signals
from kinetix.sources.base import Source
from kinetix.sources.cvdf_source import CvdfSource, head_start
from kinetix.sources.job import (
    NOT_PRESENT,
    DownloadJob,
    DownloadReport,
    landing_spec,
    needs_work,
)
from kinetix.store.layout import (
    LabelStyle,
    clip_folders,
    manifest_path,
    missing_manifest_error,
    state_dir,
)
from kinetix.store.leftovers import writing
from kinetix.store.lock import RootLock
from kinetix.store.manifest import ClipState, Manifest, manifest_absent
from kinetix.store.planning import (
    record_registration,
    recorded_registration,
    registered_rows,
    selected_rows,
    work_rows,
)
from kinetix.store.presence import mark_vanished
from kinetix.store.root import RootMeta, write_root_meta
from kinetix.store.rows import WorkRow

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def download(
    config: DownloadConfig, *, emit: Callable[[str], None] | None = None
) -> DownloadReport:
    """Run ``kinetix download``: bring ``config.root`` to the selected clips, resumably."""
    if downstream_name(config.release) is not None:
        from kinetix.downstream_download import download_downstream

        return download_downstream(config, emit=emit)
    if config.base_annotations is not None:
        raise ConfigError(
            "--base-annotations applies to countix and ava-kinetics (the K700-2020 file their "
            f"rows resolve against), not {config.release}; use --annotations"
        )
    report = _download(config, emit)
    from kinetix.card import write_root_card

    write_root_card(config.root)
    return report


def _download(config: DownloadConfig, emit: Callable[[str], None] | None) -> DownloadReport:
    started = time.monotonic()
    release = get_release(config.release)
    split = check_split(release, config.split)
    config = replace(config, release=release.name, split=split)
    if config.source is SourceKind.CVDF and release.cvdf_dir is None:
        raise ConfigError(
            f"{release.name} has no copy on the CVDF mirror; use --source youtube "
            "(or --source auto)"
        )
    prepare_root(config.root)
    if manifest_absent(manifest_path(config.root)) and clip_folders(config.root):
        # a lost manifest: fetching every clip again would not be the way back
        raise missing_manifest_error(manifest_path(config.root))
    report = DownloadReport(release.name, split)
    with (
        rows_kept(),  # the work rows (545k at K700-2020 train) stay out of the collector's walks
        stop_on_signals() as stop,
        RootLock(config.root),
        Manifest(manifest_path(config.root)) as manifest,
        writing(config.root, manifest),  # a killed run's temps and spent .part files go first
        ExitStack() as ahead,
    ):
        check_meta(manifest, config)
        from kinetix.catalog.fetch import fetch_annotations

        annotations = config.annotations or fetch_annotations(
            release.name, split, mirror=config.mirror, offline=config.offline,
            config=config.transfer,
        )  # fmt: skip
        registered = registration(Path(annotations), config.selection)
        if finished_rerun(config, release, manifest, registered, report):
            report.seconds = time.monotonic() - started
            return report
        # a fresh whole split: its first shards transfer while the rows are read and planned
        ahead.enter_context(head_start(config, release, manifest))
        with paused_gc(keep=True):
            labels, keys, catalog_size, fresh = register_selection(
                config, release, manifest, Path(annotations)
            )
        report.selected = len(keys)
        split_rows = manifest.split_size(release.name, split)
        # the selection is every row of the split: a later rerun with nothing to do may skip
        # the catalog (see finished_rerun)
        record_registration(
            manifest, release.name, split,
            {"from": registered, "rows": split_rows, "catalog": catalog_size}
            if split_rows == len(keys)
            else None,
        )  # fmt: skip
        forget_vanished(manifest, release.name, split)
        if split_rows == len(keys):
            report.already_present = manifest.split_size(release.name, split, ClipState.PRESENT)
        else:
            present = manifest.keys_in_state(release.name, split, ClipState.PRESENT)
            report.already_present = sum(map(keys.__contains__, present))
        retry = config.retry_failed
        with paused_gc(keep=True):
            missing = manifest.split_size(release.name, split, ClipState.MISSING)
            every_missing = fresh is not None and missing == len(fresh)
            if fresh is None or not every_missing:
                rows = selected_rows(manifest, release.name, split, keys, NOT_PRESENT)
            else:
                rows = fresh  # what reading them back would give, without 545k rows from SQL
            del fresh
            # a missing row is work whatever the flags (needs_work): no call per fresh row
            todo = rows if every_missing else [r for r in rows if needs_work(r, retry)]
        report.planned = len(todo)
        job = DownloadJob(config, release, manifest, report, emit, stop, labels, keys, catalog_size)
        for n, source in enumerate(sources_of(config.source)):
            if report.fatal or not source.serves(release):
                continue
            if n:  # what the sources before this one left
                rows = selected_rows(manifest, release.name, split, keys, NOT_PRESENT)
                every_missing = False
            # CvdfSource.wants is needs_work (every missing row); others are asked row by row
            if every_missing and getattr(type(source), "wants", None) is CvdfSource.wants:
                work = rows
            else:
                work = [r for r in rows if source.wants(r, config)]
            if work or source.pending(manifest, release, split):
                source.fetch(job, work)
        report.failed = Counter(
            r.error_code or "unknown"
            for r in selected_rows(manifest, release.name, split, keys, [ClipState.FAILED.value])
        )
    report.seconds = time.monotonic() - started
    return report


# --- sources ---------------------------------------------------------------------------------


def _youtube() -> Source:
    from kinetix.sources.youtube import YoutubeSource  # yt-dlp's stack only for runs that use it

    return YoutubeSource


# Where clips come from, by ``--source``; a factory each, so a CVDF-only run never imports the
# YouTube stack. ``--source auto`` asks CVDF first, then YouTube for what is still missing.
SOURCES: dict[SourceKind, Callable[[], Source]] = {
    SourceKind.CVDF: CvdfSource,
    SourceKind.YOUTUBE: _youtube,
}
_ORDER = {
    SourceKind.CVDF: (SourceKind.CVDF,),
    SourceKind.YOUTUBE: (SourceKind.YOUTUBE,),
    SourceKind.AUTO: (SourceKind.CVDF, SourceKind.YOUTUBE),
}


def sources_of(kind: SourceKind) -> list[Source]:
    """The sources a ``--source kind`` run asks, in order."""
    return [SOURCES[k]() for k in _ORDER[kind]]


# --- planning -------------------------------------------------------------------------------


class Registration(NamedTuple):
    labels: list[str]  # the release's class names, in class-index order
    keys: set[str]  # the selected clips' keys
    catalog_size: int  # rows of the annotation file
    fresh: list[WorkRow] | None  # the work rows when the split was registered just now


def register_selection(
    config: DownloadConfig, release: Release, manifest: Manifest, annotations: Path
) -> Registration:
    """Read the catalog, select, and register the selected clips the manifest does not know.

    Set-based: a rerun registers only the new keys. When the split's rows are all new, the
    work rows are made from the clips (``registered_rows``) instead of being read back.
    """
    from kinetix.catalog.fetch import read_catalog, read_fetched_catalog

    split = config.split
    if config.annotations is not None:
        catalog = read_catalog(release.name, split, annotations)
    else:
        catalog = read_fetched_catalog(release.name, split, annotations)
    selected = catalog.select(config.selection)
    labels = list(catalog.registry.names)
    selected_keys = clip_keys(selected)
    keys = set(selected_keys)
    unknown = manifest.unknown_keys(release.name, split, keys)
    fresh = None
    if unknown:
        every = len(unknown) == len(keys)
        if every:
            # in key order once (stably: of two rows with one key the first stays first), so
            # the sorts of add_clips and registered_rows are a pass over sorted input
            order = sorted(range(len(selected_keys)), key=selected_keys.__getitem__)
            selected = list(map(selected.__getitem__, order))
            selected_keys = list(map(selected_keys.__getitem__, order))
            del order
        new = selected if every else [c for c in selected if c.key in unknown]
        indices = {name: i for i, name in enumerate(labels)}
        before = manifest.split_size(release.name, split)
        added = manifest.add_clips(new, indices, keys=selected_keys if every else None)
        if before == 0 and added == len(selected):
            fresh = registered_rows(selected, selected_keys)
    # ~650k Clip tuples go with the catalog: only their keys are needed from here on
    return Registration(labels, keys, len(catalog.clips), fresh)


def registration(annotations: Path, selection: Selection) -> str:
    """What a split's rows were registered from: the annotation file (as ``make`` sees it)
    and the selection."""
    st = annotations.stat()
    chosen = hashlib.sha256(repr(selection).encode()).hexdigest()[:32]
    return json.dumps([str(annotations.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, chosen])


def finished_rerun(
    config: DownloadConfig,
    release: Release,
    manifest: Manifest,
    registered: str,
    report: DownloadReport,
) -> bool:
    """A rerun of the selection last registered, from the same file, with nothing to do.

    Then the catalog is not read at all (650k rows parsed, keyed and compared for nothing):
    the split's rows are the selection, its counts come from the counters, and only the rows
    not present are read. Fills ``report`` and returns True; False means "do the full run".
    """
    recorded = recorded_registration(manifest, release.name, config.split)
    split = config.split
    if not recorded or recorded["from"] != registered:
        return False
    if recorded["rows"] != manifest.split_size(release.name, split):
        return False
    if forget_vanished(manifest, release.name, split):
        return False
    rows = work_rows(manifest, release.name, split, NOT_PRESENT)
    for source in sources_of(config.source):
        if source.serves(release) and (
            source.pending(manifest, release, split) or any(source.wants(r, config) for r in rows)
        ):
            return False
    report.selected = recorded["rows"]
    report.already_present = manifest.split_size(release.name, split, ClipState.PRESENT)
    report.failed = Counter(
        r.error_code or "unknown" for r in rows if r.state == ClipState.FAILED.value
    )
    return True


def prepare_root(root: Path) -> None:
    """Create ``ROOT/.kinetix``; a read-only or unusable root is one clear error."""
    require_writable(state_dir(root), str(root), "choose a writable --root (nothing was changed)")


def check_meta(manifest: Manifest, config: DownloadConfig) -> None:
    """A root holds one release in one layout; say so instead of mixing them.

    A root with no clip rows yet (an earlier run stopped at a bad flag) takes any.
    """
    empty = not manifest.has_clips()
    meta = RootMeta.read(manifest)
    for key, have, value in (
        ("release", meta.release, config.release),
        ("layout", meta.layout, config.layout.value),
    ):
        if have is not None and have != value and not empty:
            flag = "--layout" if key == "layout" else "the release"
            raise ConfigError(
                f"{config.root} holds {key} {have!r}, not {value!r}; use {flag} {have} "
                "or another --root"
            )
    landing = landing_spec(config)
    kind = "videos" if landing is None else landing.kind
    settings = None if landing is None else json.dumps(landing.settings(), sort_keys=True)
    have_kind, have_settings = meta.recorded_kind, meta.settings
    if not empty and (have_kind or "videos", have_settings) != (kind, settings):
        raise ConfigError(
            f"{config.root} holds {_describe_root(have_kind, have_settings)}, but this run "
            f"makes {_describe_root(kind, settings)}; repeat the flags it was made with "
            "(see its manifest's settings) or use another --root"
        )
    write_root_meta(
        manifest, kind=kind, settings=settings, release=config.release,
        layout=config.layout.value, mirror=config.mirror or None,
    )  # fmt: skip


def _describe_root(kind: str | None, settings: str | None) -> str:
    if settings is None:
        return "original clips" if kind in (None, "videos") else f"a {kind} dataset"
    made = json.loads(settings)
    what = "frame folders" if kind == "frames" else "processed clips"
    flags = ", ".join(f"{k}={v}" for k, v in sorted(made.items()) if k != "fused" and v is not None)
    return f"{what} ({flags})"


def forget_vanished(manifest: Manifest, release: str, split: str) -> int:
    """Present rows whose file is gone are missing again (someone deleted or moved it).

    Checked per folder, not per clip (see ``store/presence.py``).
    """
    gone = mark_vanished(manifest, release, split)
    if gone:
        log.warning(
            "%d clips recorded as present are gone from disk; fetching them again", len(gone)
        )
    return len(gone)


# --- verify --refetch -----------------------------------------------------------------------


def refetch(root: Path, keys: Iterable[tuple[str, str, str]], **overrides: Any) -> int:
    """Fetch again the clips ``verify`` quarantined, with the settings the root was made with.

    ``keys`` are (release, split, key); returns how many are present afterwards.
    """
    root = Path(root)
    by_split: dict[tuple[str, str], list[str]] = defaultdict(list)
    for release, split, key in keys:
        by_split[(release, split)].append(key)
    with Manifest(manifest_path(root), readonly=True) as manifest:
        meta = RootMeta.read(manifest)
    layout, mirror, settings = meta.layout or LabelStyle.RAW.value, meta.mirror, meta.settings
    if settings is not None:  # made by a fused download (or by process/frames: refused)
        from kinetix.process.landing import configs_from_settings

        process, frames = configs_from_settings(json.loads(settings))
        overrides = {"process": process, "frames": frames, **overrides}
        overrides.setdefault("keep_originals", (root / "originals").is_dir())
    placed = 0
    for (release, split), split_keys in sorted(by_split.items()):
        config = DownloadConfig(
            root=root,
            release=release,
            split=split,
            selection=Selection(ids=tuple(split_keys)),
            layout=LabelStyle.parse(layout),
            mirror=mirror,
            progress=False,
            **overrides,
        )
        report = download(config)
        placed += sum(report.placed.values())
    return placed
