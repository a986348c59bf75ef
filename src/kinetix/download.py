"""The download job: plan the clips a root is missing, fetch them from CVDF and/or YouTube, record.

catalog -> manifest rows (one per selected clip) -> work (missing, quarantined, failed on request)
-> CVDF shard tasks (then, for K400, the replacement set) -> YouTube clip tasks for what is still
missing (``--source youtube|auto``) -> each result applied to the manifest by this one process.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from kinetix.catalog.releases import CVDF_BASE, Release, check_split, get_release, join_url
from kinetix.config import DownloadConfig, Selection, SourceKind
from kinetix.errors import ConfigError, ConnectError, DiskSpaceError, ErrorCode, KinetixError
from kinetix.executors import Executor, LocalExecutor, TaskKind, make_executor
from kinetix.interrupts import StopToken, stop_on_signals
from kinetix.progress import Progress
from kinetix.sources.base import TaskResult
from kinetix.sources.cvdf import (
    INTERRUPTED,
    ShardTask,
    fetch_shard,
    finish_part,
    plan_shards,
    read_path_list,
    shard_id,
    shard_task,
    unplaced,
)
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path, partial_dir, state_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest

log = logging.getLogger(__name__)

_CVDF_SOURCES = frozenset({"cvdf", "cvdf_replacement"})


class WorkRow(NamedTuple):
    """The few manifest columns planning needs (a full ClipRow per clip is too heavy at 650k)."""

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


@dataclass
class DownloadReport:
    """What one run did; the CLI prints it, tests assert on it."""

    release: str
    split: str
    selected: int = 0
    already_present: int = 0
    planned: int = 0
    placed_keys: dict[str, str] = field(default_factory=dict)  # clip key -> source
    failed: Counter[str] = field(default_factory=Counter)  # error code -> clips
    # clips a source served that failed the inline check (set aside, not placed): key -> code
    quarantined_keys: dict[str, str] = field(default_factory=dict)
    shards_done: int = 0
    shards_failed: int = 0
    bytes_transferred: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: bool = False  # a failure (disk full) that stopped the run early
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def quarantined(self) -> Counter[str]:
        """Clips set aside by the inline check and not placed since, by error code."""
        return Counter(self.quarantined_keys.values())

    @property
    def placed(self) -> Counter[str]:
        """Clips placed by this run, by source (a replaced clip counts once, as replaced)."""
        return Counter(self.placed_keys.values())


def download(
    config: DownloadConfig, *, emit: Callable[[str], None] | None = None
) -> DownloadReport:
    """Run ``kinetix download``: bring ``config.root`` to the selected clips, resumably."""
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
    report = DownloadReport(release.name, split)
    with (
        stop_on_signals() as stop,
        RootLock(config.root),
        Manifest(manifest_path(config.root)) as manifest,
    ):
        check_meta(manifest, config)
        from kinetix.catalog.fetch import load_catalog

        catalog = load_catalog(
            release.name,
            split,
            mirror=config.mirror,
            offline=config.offline,
            annotations=config.annotations,
            config=config.transfer,
        )
        selected = catalog.select(config.selection)
        labels = list(catalog.registry.names)
        manifest.add_clips(selected, {name: i for i, name in enumerate(labels)})
        keys = {c.key for c in selected}
        report.selected = len(keys)
        rows = [r for r in work_rows(manifest, release.name, split) if r.key in keys]
        if forget_vanished(manifest, release.name, rows):
            rows = [r for r in work_rows(manifest, release.name, split) if r.key in keys]
        report.already_present = sum(r.state == ClipState.PRESENT.value for r in rows)
        retry = config.retry_failed
        todo = [r for r in rows if needs_work(r, retry)]
        report.planned = len(todo)
        if todo and config.source in (SourceKind.CVDF, SourceKind.AUTO) and release.cvdf_dir:
            run_cvdf(
                config, release, manifest, todo, labels, keys, len(catalog.clips), report, emit,
                stop=stop,
            )  # fmt: skip
        if config.source in (SourceKind.YOUTUBE, SourceKind.AUTO):
            rows = [r for r in work_rows(manifest, release.name, split) if r.key in keys]
            auto = config.source is SourceKind.AUTO
            yt = [r for r in rows if needs_work(r, retry, cvdf_gaps=auto)]
            if yt and not report.fatal:
                run_youtube(config, manifest, yt, report, emit, stop=stop)
        report.failed = Counter(
            r.error_code or "unknown"
            for r in work_rows(manifest, release.name, split)
            if r.key in keys and r.state == ClipState.FAILED.value
        )
    report.seconds = time.monotonic() - started
    return report


# --- planning -------------------------------------------------------------------------------


def archives_dir(root: Path) -> Path:
    """``--keep-archives``: ``ROOT/archives/{path under the CVDF base}``, beside the splits."""
    return Path(root) / "archives"


def prepare_root(root: Path) -> None:
    """Create ``ROOT/.kinetix``; a read-only or unusable root is one clear error."""
    try:
        state_dir(root).mkdir(parents=True, exist_ok=True)
        probe = state_dir(root) / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KinetixError(
            f"cannot write to {root}: {exc.strerror or exc}; choose a writable --root "
            "(nothing was changed)"
        ) from None


def check_meta(manifest: Manifest, config: DownloadConfig) -> None:
    """A root holds one release in one layout; say so instead of mixing them.

    A root with no clip rows yet (an earlier run stopped at a bad flag) takes any.
    """
    empty = manifest.execute("SELECT 1 FROM clips LIMIT 1").fetchone() is None
    for key, value in (("release", config.release), ("layout", config.layout.value)):
        have = manifest.get_meta(key)
        if have is not None and have != value and not empty:
            flag = "--layout" if key == "layout" else "the release"
            raise ConfigError(
                f"{config.root} holds {key} {have!r}, not {value!r}; use {flag} {have} "
                "or another --root"
            )
    manifest.set_meta("kind", "videos")
    manifest.set_meta("release", config.release)
    manifest.set_meta("layout", config.layout.value)
    if config.mirror:
        manifest.set_meta("mirror", config.mirror)


def work_rows(manifest: Manifest, release: str, split: str) -> list[WorkRow]:
    cur = manifest.execute(
        "SELECT release, split, key, youtube_id, time_start, time_end, label, state, "
        "error_code, source, path FROM clips "
        "WHERE release=? AND split=? ORDER BY key",
        (release, split),
    )
    return [WorkRow(*r) for r in cur]


def needs_work(row: WorkRow, retry: tuple[str, ...] | None, *, cvdf_gaps: bool = False) -> bool:
    """Missing and quarantined clips are work; failed ones when asked (and CVDF gaps for auto).

    A clip CVDF failed to give (no shard holds it, or the copy it holds is broken) is a gap
    YouTube can fill under ``--source auto``.
    """
    if row.state in (ClipState.MISSING.value, ClipState.QUARANTINED.value):
        return True
    if row.state != ClipState.FAILED.value:
        return False
    if cvdf_gaps and row.source in _CVDF_SOURCES:
        # no shard held it (not_in_shard), or the copy one held failed the inline check
        return True
    if retry is None:
        return False
    return not retry or row.error_code in retry


def forget_vanished(manifest: Manifest, release: str, rows: Sequence[WorkRow]) -> int:
    """Present rows whose file is gone are missing again (someone deleted or moved it)."""
    root = manifest.path.parent.parent
    gone = [
        ClipUpdate(release, r.split, r.key, {"state": ClipState.MISSING.value, "verify": None})
        for r in rows
        if r.state == ClipState.PRESENT.value and r.path and not (root / r.path).exists()
    ]
    if gone:
        log.warning(
            "%d clips recorded as present are gone from disk; fetching them again", len(gone)
        )
        manifest.apply(gone)
    return len(gone)


# --- CVDF -----------------------------------------------------------------------------------


def run_cvdf(
    config: DownloadConfig,
    release: Release,
    manifest: Manifest,
    todo: Sequence[WorkRow],
    labels: Sequence[str],
    selected: set[str],
    catalog_size: int,
    report: DownloadReport,
    emit: Callable[[str], None] | None,
    *,
    stop: StopToken | None = None,
) -> None:
    list_path = release.path_list_path(config.split)
    shards = read_path_list(fetch_text(list_path, config), config.mirror, list_path)
    done = {s["url"] for s in manifest.shards(release=release.name) if s["state"] == "done"}
    listed = manifest.shard_index(shard_id(name) for _, name in shards if shard_id(name) in done)
    replacement = replacement_task(config, release, manifest, todo, selected)
    if replacement is not None and not replacement.overwrite:
        # The replacement set was read before and holds these: its copy is the good one.
        todo = [r for r in todo if r.key not in replacement.wanted]
    keep = archives_dir(config.root) if config.keep_archives else None
    plan = plan_shards(
        todo,
        shards,
        listed=listed,
        done=done,
        labels=labels,
        root=config.root,
        layout=config.layout,
        partial=partial_dir(config.root),
        transfer=config.transfer,
        release=release,
        split=config.split,
        keep_archives=keep,
    )
    fetch_bytes = check_disk_space(
        config, plan.tasks, mixed=plan.mixed, catalog_size=catalog_size, shards=len(shards)
    )
    run_shard_tasks(
        config, manifest, plan.tasks, report, emit, "shards",
        total_bytes=fetch_bytes, total_clips=len(todo), stop=stop,
    )  # fmt: skip
    if replacement is not None and not report.fatal:
        run_shard_tasks(
            config, manifest, [replacement], report, emit, "replacement set",
            total_clips=len(replacement.wanted) if not replacement.overwrite else None,
            stop=stop,
        )  # fmt: skip
    done = {s["url"] for s in manifest.shards(release=release.name) if s["state"] == "done"}
    if replacement is not None:
        rep_listed = set(manifest.shard_index([replacement.shard_id]))
        for key in list(plan.candidates):
            if key in rep_listed:
                plan.candidates.pop(key)
            else:
                plan.candidates[key] = plan.candidates[key] | {replacement.shard_id}
    present = {
        r.key for r in work_rows(manifest, release.name, config.split) if r.state == "present"
    }
    # a clip whose copy failed the inline check was found: it keeps that reason
    gaps = unplaced(plan, present | set(report.quarantined_keys), done)
    if gaps:
        manifest.apply(
            ClipUpdate(
                release.name,
                config.split,
                key,
                {
                    "state": ClipState.FAILED.value,
                    "source": "cvdf",
                    "error_code": ErrorCode.NOT_IN_SHARD.value,
                    "error_message": "no CVDF shard holds this clip",
                },
                count_attempt=True,
            )
            for key in gaps
        )


def replacement_task(
    config: DownloadConfig,
    release: Release,
    manifest: Manifest,
    todo: Sequence[WorkRow],
    selected: set[str],
) -> ShardTask | None:
    """The K400 replacement set: read in full once (it overwrites corrupted clips), then only
    for clips it is known to hold."""
    if release.replacement is None:
        return None
    url = join_url(config.mirror or CVDF_BASE, release.replacement)
    state = manifest.shard(shard_id(release.replacement))
    if state is None or state["state"] != "done":
        rows = [r for r in work_rows(manifest, release.name, config.split) if r.key in selected]
        wanted = {r.key: clip_relpath(r.split, r.label, r.key, config.layout) for r in rows}
        overwrite = True
    else:
        members = set(manifest.shard_index([shard_id(release.replacement)]))
        wanted = {
            r.key: clip_relpath(r.split, r.label, r.key, config.layout)
            for r in todo
            if r.key in members
        }
        overwrite = False
        if not wanted:
            return None
    return shard_task(
        url,
        release.replacement,
        wanted,
        root=config.root,
        partial=partial_dir(config.root),
        transfer=config.transfer,
        release=release.name,
        split=config.split,
        keep_archives=archives_dir(config.root) if config.keep_archives else None,
        source="cvdf_replacement",
        overwrite=overwrite,
    )


def fetch_text(path: str, config: DownloadConfig) -> str:
    """A small mirror file (a path list), cached under ``ROOT/.kinetix/lists/``."""
    from kinetix.transfer.http import fetch_file

    cached = state_dir(config.root) / "lists" / path
    if not cached.exists():
        if config.offline:
            raise KinetixError(f"{path} is not cached under {cached.parent} and --offline is set")
        fetch_file(join_url(config.mirror or CVDF_BASE, path), cached, config.transfer)
    return cached.read_text(encoding="utf-8")


def check_disk_space(
    config: DownloadConfig,
    tasks: Sequence[ShardTask],
    *,
    mixed: bool,
    catalog_size: int,
    shards: int,
) -> int:
    """Refuse to start when the clips to write plus the shards in flight cannot fit.

    Returns the bytes the shards hold (what the progress bar counts to).
    """
    if not tasks:
        return 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        sizes = list(pool.map(lambda t: _size_or_zero(t.url, config), tasks))
    # A class-mixed shard holds about 1/shards of the catalog, a class shard one class: only
    # the share of its clips that is wanted gets written.
    per_shard = catalog_size if mixed else max(catalog_size / max(shards, 1), 1.0)
    written = sum(size * min(1.0, len(t.wanted) / per_shard) for size, t in zip(sizes, tasks))
    staging = max(sizes) * min(config.parallel, len(tasks))
    fetched = sum(sizes)
    need = int(written + staging + (fetched if config.keep_archives else 0))
    free = shutil.disk_usage(config.root).free
    if need > free:
        raise DiskSpaceError(
            f"{config.root} has {free / 1e9:.1f} GB free but this run needs about "
            f"{need / 1e9:.1f} GB ({len(tasks)} shards, {fetched / 1e9:.1f} GB to fetch); "
            "free space, choose another --root, or select fewer clips (--classes, --max-per-class)"
        )
    return fetched


def _size_or_zero(url: str, config: DownloadConfig) -> int:
    from kinetix.transfer.http import probe

    try:
        return probe(url, config.transfer).size or 0
    except ConnectError:
        raise  # the mirror cannot be reached at all: one line now, not one per shard
    except KinetixError:
        return 0  # the task itself will report the failure with its reason


def run_shard_tasks(
    config: DownloadConfig,
    manifest: Manifest,
    tasks: Sequence[ShardTask],
    report: DownloadReport,
    emit: Callable[[str], None] | None,
    what: str,
    *,
    total_bytes: int | None = None,
    total_clips: int | None = None,
    stop: StopToken | None = None,
) -> None:
    """Run shard tasks and record each result as it comes.

    Ctrl-C / SIGTERM (or a full disk) sets ``stop``: transfers in flight are aborted with their
    partial files kept, nothing new starts, and every task already running is waited for, so
    each clip a shard placed before the stop is recorded; then ``Interrupted`` is raised.
    """
    if not tasks:
        return
    stop = stop or StopToken()
    progress = Progress(
        what,
        total_bytes=total_bytes or None,
        total_clips=total_clips,
        total_tasks=len(tasks),
        bars=None if config.progress else False,
        emit=emit if config.progress else None,
    )
    executor, fn = _shard_executor(config, progress, stop)
    by_id = {t.shard_id: t for t in tasks}
    try:
        with stop.running():
            results = executor.map_unordered(fn, stop.guard(tasks), kind=TaskKind.IO)
            for result in results:
                if result.error_code == INTERRUPTED or (result.error and stop.is_set()):
                    continue  # stopped part way: the partial stays, nothing to record
                _record_shard(manifest, result, by_id, report, progress, stop)
    finally:
        executor.close()
        progress.close()
    stop.raise_if_signalled()


def _record_shard(
    manifest: Manifest,
    result: TaskResult,
    by_id: dict[str, ShardTask],
    report: DownloadReport,
    progress: Progress,
    stop: StopToken,
) -> None:
    apply_result(manifest, result, report)
    task = by_id[result.shard_url or ""]
    if result.error is None:
        finish_part(task)
        report.shards_done += 1
        ok = sum(_placed(u) for u in result.updates)
        progress.add_clips(ok, failed=len(result.updates) - ok)
    else:
        report.shards_failed += 1
        report.errors.append(result.error)
        if result.error_code == ErrorCode.NO_SPACE.value:
            # Every other shard would fail the same way: stop them, keep their partials.
            report.fatal = True
            stop.set()
    progress.task_done()


def _shard_executor(
    config: DownloadConfig, progress: Progress, stop: StopToken
) -> tuple[Executor, Callable[[ShardTask], TaskResult]]:
    if config.executor == "local":
        return LocalExecutor(config.parallel, io_workers=config.parallel), partial(
            fetch_shard, progress=progress.add_bytes, stop=stop
        )
    return make_executor(config.executor, config.parallel), fetch_shard


def apply_result(manifest: Manifest, result: TaskResult, report: DownloadReport) -> None:
    manifest.apply(result.updates)
    if result.shard_url is not None:
        manifest.set_shard(result.shard_url, count_attempt=True, **result.shard_fields)
        if result.error is None:
            manifest.set_shard_members(result.shard_url, result.shard_members)
    report.bytes_transferred += result.bytes_transferred
    for u in result.updates:
        state = u.fields.get("state")
        if state == ClipState.PRESENT.value:
            report.placed_keys[u.key] = str(u.fields.get("source"))
            report.quarantined_keys.pop(u.key, None)  # the replacement set's good copy
        elif state == ClipState.FAILED.value and u.fields.get("verify") == "bad":
            report.quarantined_keys[u.key] = str(u.fields.get("error_code"))


# --- YouTube --------------------------------------------------------------------------------


def run_youtube(
    config: DownloadConfig,
    manifest: Manifest,
    rows: Sequence[WorkRow],
    report: DownloadReport,
    emit: Callable[[str], None] | None,
    *,
    stop: StopToken | None = None,
) -> None:
    from kinetix.sources.youtube import YoutubeSource

    stop = stop or StopToken()
    source = YoutubeSource(config.root, config.youtube, config.layout)
    tasks = source.plan(rows)
    progress = Progress(
        "youtube",
        total_clips=len(tasks),
        bars=None if config.progress else False,
        emit=emit if config.progress else None,
    )
    executor: Executor
    if config.executor == "local":
        executor = LocalExecutor(config.parallel, io_workers=config.parallel)
    else:
        executor = make_executor(config.executor, config.parallel)
    try:
        with stop.running():
            for result in executor.map_unordered(source.run, stop.guard(tasks), kind=TaskKind.IO):
                if stop.is_set():  # a clip that failed now may have failed from the stop itself
                    result = replace(result, updates=[u for u in result.updates if _placed(u)])
                apply_result(manifest, result, report)
                ok = sum(_placed(u) for u in result.updates)
                progress.add_clips(ok, failed=len(result.updates) - ok)
    finally:
        executor.close()
        progress.close()
    stop.raise_if_signalled()


def _placed(update: ClipUpdate) -> bool:
    return update.fields.get("state") == ClipState.PRESENT.value


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
        layout = manifest.get_meta("layout", LabelStyle.RAW.value) or LabelStyle.RAW.value
        mirror = manifest.get_meta("mirror")
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
