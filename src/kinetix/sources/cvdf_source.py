"""The CVDF source of the download job: a split's missing clips from the mirror's shards.

It reads the split's path list (cached under ``ROOT/.kinetix/lists/``), checks the disk, plans
one task per shard that holds wanted clips (``sources/cvdf.py``), runs them, then for K400
train the replacement set, and records the clips no shard holds as gaps.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from kinetix.bulk import paused_gc
from kinetix.catalog.releases import CVDF_BASE, Release, join_url
from kinetix.config import DownloadConfig, Selection, SourceKind, VerifyConfig
from kinetix.crashpoints import crash_point
from kinetix.errors import ConfigError, ConnectError, DiskSpaceError, ErrorCode, KinetixError
from kinetix.executors import Executor, LocalExecutor, TaskKind, run_tasks
from kinetix.interrupts import StopToken
from kinetix.progress import Progress
from kinetix.sources.base import TaskResult
from kinetix.sources.cvdf import (
    INTERRUPTED,
    ShardPlan,
    ShardTask,
    fetch_shard,
    finish_part,
    part_path_of,
    plan_shards,
    read_path_list,
    shard_id,
    shard_task,
    unplaced,
)
from kinetix.sources.job import (
    NOT_PRESENT,
    REFUSED,
    DownloadJob,
    DownloadReport,
    apply_result,
    archives_dir,
    cluster_executor,
    landing_spec,
    needs_work,
    placed,
)
from kinetix.store.layout import clip_relpath, partial_dir, state_dir
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest
from kinetix.store.planning import work_rows
from kinetix.store.rows import WorkRow
from kinetix.transfer import prefetch

if TYPE_CHECKING:
    from kinetix.transfer.http import RemoteInfo

log = logging.getLogger(__name__)

# A replacement set that is not on the mirror at all.
_ABSENT = frozenset({ErrorCode.HTTP_404.value, ErrorCode.NOT_AN_ARCHIVE.value})


class CvdfSource:
    """Clips from the CVDF mirror's shards (and K400 train's replacement set)."""

    name = "cvdf"

    def serves(self, release: Release) -> bool:
        return release.cvdf_dir is not None

    def wants(self, row: WorkRow, config: DownloadConfig) -> bool:
        return needs_work(row, config.retry_failed)

    def pending(self, manifest: Manifest, release: Release, split: str) -> bool:
        return replacement_pending(manifest, release, split)

    def fetch(self, job: DownloadJob, rows: Sequence[WorkRow]) -> None:
        run_cvdf(
            job.config, job.release, job.manifest, rows, job.labels, job.selected,
            job.catalog_size, job.report, job.emit, stop=job.stop,
        )  # fmt: skip


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
    shards = load_path_list(list_path, config)
    done = {s["url"] for s in manifest.shards(release=release.name) if s["state"] == "done"}
    listed = manifest.shard_index(shard_id(name) for _, name in shards if shard_id(name) in done)
    replacement = release.replacement_for(config.split)
    part_todo = list(todo)
    if replacement is not None:
        # Clips whose part copy was refused wait for the replacement set, and clips a fully
        # read replacement set holds come from it: never (again) from the parts.
        held = set(manifest.shard_index([shard_id(replacement)]))
        part_todo = [r for r in todo if r.key not in held and not part_copy_refused(r)]
    keep = archives_dir(config.root) if config.keep_archives else None
    landing = landing_spec(config)
    if landing is not None:
        from kinetix.process.landing import clear_stage

        clear_stage(config.root)
    with paused_gc():  # ~545k rows grouped: no cycles, and a collection per few hundred
        plan = plan_shards(
            part_todo,
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
            max_member_bytes=config.max_clip_bytes,
            refused_state=(ClipState.MISSING if replacement else ClipState.FAILED).value,
            verify=VerifyConfig() if config.inline_verify else None,
            landing=landing,
        )
    fetch_bytes = check_disk_space(
        config, plan.tasks, mixed=plan.mixed, catalog_size=catalog_size, shards=len(shards)
    )

    def not_in_any_shard() -> int:
        """Clips every candidate shard was read for, and none held: settled, as gaps."""
        done = {s["url"] for s in manifest.shards(release=release.name) if s["state"] == "done"}
        rows = work_rows(manifest, release.name, config.split)
        present = {r.key for r in rows if r.state == ClipState.PRESENT.value}
        return len(unplaced(plan, present | report.held_keys, done))

    run_shard_tasks(
        config, manifest, plan.tasks, report, emit, "shards",
        total_bytes=fetch_bytes, total_clips=len(part_todo), stop=stop,
        settle=not_in_any_shard if config.progress else None,
    )  # fmt: skip
    if replacement is not None and not report.fatal:
        run_replacement(
            config, release, replacement, manifest, plan, todo, selected, report, emit, stop
        )
    done = {s["url"] for s in manifest.shards(release=release.name) if s["state"] == "done"}
    absent = {r.key for r in work_rows(manifest, release.name, config.split, NOT_PRESENT)}
    present = {key for key in plan.candidates if key not in absent}
    # a clip whose copy failed the inline check was found: it keeps that reason
    gaps = unplaced(plan, present | report.held_keys, done)
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


def part_copy_refused(row: WorkRow) -> bool:
    """A clip whose copy in a part was refused or set aside: the parts cannot give it."""
    return row.source == "cvdf" and row.error_code not in (None, ErrorCode.NOT_IN_SHARD.value)


def run_replacement(
    config: DownloadConfig,
    release: Release,
    replacement: str,
    manifest: Manifest,
    plan: ShardPlan,
    todo: Sequence[WorkRow],
    selected: set[str],
    report: DownloadReport,
    emit: Callable[[str], None] | None,
    stop: StopToken | None = None,
) -> None:
    """The K400 replacement set, for train only and only when a selected clip needs it.

    A clip needs it when its copy in the parts was refused (damaged, unsafe, twice) or no part
    holds it. The set is read in full once (its good copies replace the parts' ones, as CVDF's
    own flow does), then only for the clips it is known to hold. The decision to read it is
    recorded before the fetch (shard state ``pending``), so a run killed during it reads it
    again. A mirror without it leaves a gap for exactly the clips that needed it, not a
    failed run.
    """
    ident = shard_id(replacement)
    rows = [r for r in work_rows(manifest, release.name, config.split) if r.key in selected]
    done = {s["url"] for s in manifest.shards(release=release.name) if s["state"] == "done"}
    present = {r.key for r in rows if r.state == ClipState.PRESENT.value}
    not_in_parts = set(unplaced(plan, present | report.held_keys, done))
    work = {r.key for r in todo}
    needy = {r.key for r in rows if r.key in work and part_copy_refused(r)} | not_in_parts
    state = manifest.shard(ident)
    if state is not None and state["state"] == "done":
        members = set(manifest.shard_index([ident]))
        wanted = [r for r in rows if r.key in members and takes_replacement(r)]
    elif needy or (state is not None and state["state"] == "pending"):
        wanted = [r for r in rows if takes_replacement(r)]
        manifest.set_shard(
            ident, release=release.name, split=config.split, name=replacement, state="pending"
        )
        crash_point("download.replacement")
    else:
        return
    failures = len(report.errors)
    if wanted:
        task = shard_task(
            join_url(config.mirror or CVDF_BASE, replacement),
            replacement,
            {r.key: clip_relpath(r.split, r.label, r.key, config.layout) for r in wanted},
            root=config.root,
            partial=partial_dir(config.root),
            transfer=config.transfer,
            release=release.name,
            split=config.split,
            keep_archives=archives_dir(config.root) if config.keep_archives else None,
            source="cvdf_replacement",
            max_member_bytes=config.max_clip_bytes,
            verify=VerifyConfig() if config.inline_verify else None,
            landing=landing_spec(config),
        )
        run_shard_tasks(
            config, manifest, [task], report, emit, "replacement set",
            total_clips=len(needy & set(task.wanted)) or None, stop=stop,
        )  # fmt: skip
    result = manifest.shard(ident) or {}
    if result.get("state") == "done":
        reason = f"the replacement set {replacement} does not hold it either"
    elif result.get("error_code") in _ABSENT:
        # Not on this mirror: a gap for the clips that needed it, not a failed run.
        del report.errors[failures:]
        report.shards_failed -= 1
        reason = f"the replacement set is not on this mirror ({result.get('error_message')})"
        log.warning(
            "%s is not on this mirror (%s): the %d selected clip(s) that needed it are recorded "
            "as gaps (see 'kinetix status'); --source auto takes them from YouTube",
            replacement,
            result.get("error_code"),
            len(needy),
        )
    else:
        for key in not_in_parts:  # they wait for the replacement set: a rerun reads it
            plan.candidates.pop(key, None)
        return
    gaps = [r for r in work_rows(manifest, release.name, config.split) if r.key in needy]
    gaps = [r for r in gaps if r.state != ClipState.PRESENT.value]
    manifest.apply(
        ClipUpdate(
            release.name,
            config.split,
            r.key,
            {
                "state": ClipState.FAILED.value,
                "source": "cvdf",
                "error_code": r.error_code or ErrorCode.NOT_IN_SHARD.value,
                "error_message": f"{message_of(manifest, r) or 'no CVDF part holds this clip'}; "
                f"{reason}",
            },
            count_attempt=True,
        )
        for r in gaps
    )
    for r in gaps:
        plan.candidates.pop(r.key, None)
        code = report.refused_keys.pop(r.key, None)
        if code is not None and code not in REFUSED:  # set aside by the check, for good now
            report.quarantined_keys[r.key] = code


def takes_replacement(row: WorkRow) -> bool:
    """Every selected clip not yet present, and those placed from a part, take its copy."""
    return row.state != ClipState.PRESENT.value or row.source == "cvdf"


def replacement_pending(manifest: Manifest, release: Release, split: str) -> bool:
    """A run decided to read the replacement set and did not finish (killed, say)."""
    replacement = release.replacement_for(split)
    state = None if replacement is None else manifest.shard(shard_id(replacement))
    return state is not None and state["state"] == "pending"


def message_of(manifest: Manifest, row: WorkRow) -> str | None:
    clip = manifest.get(row.release, row.split, row.key)
    return None if clip is None or row.error_code is None else clip.error_message


def fetch_text(path: str, config: DownloadConfig) -> str:
    """A small mirror file (a path list), cached under ``ROOT/.kinetix/lists/``."""
    from kinetix.transfer.http import fetch_file

    cached = state_dir(config.root) / "lists" / path
    if not cached.exists():
        if config.offline:
            raise ConfigError(f"{path} is not cached under {cached.parent} and --offline is set")
        fetch_file(join_url(config.mirror or CVDF_BASE, path), cached, config.transfer)
    return cached.read_bytes().decode("utf-8")


def load_path_list(path: str, config: DownloadConfig) -> list[tuple[str, str]]:
    """The shards of a CVDF path list; a cached copy that is not one is fetched once more.

    What is not a list of URLs (junk, an error page in place of the file) is never kept: a
    cached bad copy would fail every later run the same way.
    """
    cached = state_dir(config.root) / "lists" / path
    for attempt in (1, 2):
        was_cached = cached.exists()
        try:
            return read_path_list(fetch_text(path, config), config.mirror, path)
        except (UnicodeDecodeError, KinetixError) as exc:
            if isinstance(exc, KinetixError) and not cached.exists():
                raise  # the fetch itself failed: its message says why
            cached.unlink(missing_ok=True)
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            if was_cached and attempt == 1 and not config.offline:
                log.warning("the cached %s is damaged (%s); fetching it again", path, reason)
                continue
            raise KinetixError(
                f"{path} from {config.mirror or CVDF_BASE} is not a list of shard URLs "
                f"({reason.split('; ')[0]}); it was not kept: rerun to fetch it again, or check "
                "--mirror"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def head_start(
    config: DownloadConfig, release: Release, manifest: Manifest
) -> contextlib.AbstractContextManager[int]:
    """The shards a fresh whole-split run fetches first, started while it registers and plans.

    Only where they are known before the plan: nothing of the split registered yet, every
    clip selected (so every shard of the path list is fetched, first by name, as the plan
    orders them), CVDF asked first, the local executor (the tasks run in this process and
    take the transfers over: ``transfer/prefetch.py``). ``--parallel`` shards start, and only
    when they fit on the disk; the run's own disk check still comes before any other shard.
    Anything that goes wrong here is left to the run, which meets it again and says so.
    """
    nothing = contextlib.nullcontext(0)
    if (
        config.source not in (SourceKind.CVDF, SourceKind.AUTO)
        or not CvdfSource().serves(release)
        or not config.executor.is_local
        or config.executor.dry_run
        or config.selection != Selection()
        or manifest.split_size(release.name, config.split)
    ):
        return nothing
    try:
        shards = load_path_list(release.path_list_path(config.split), config)
        first = sorted(shards, key=lambda shard: shard[1])[: config.parallel]
        with ThreadPoolExecutor(max_workers=max(len(first), 1)) as pool:  # one round trip
            infos = list(pool.map(lambda shard: _probe_or_none(shard[0], config), first))
    except KinetixError as exc:
        log.debug("no head start: %s", exc)
        return nothing
    sizes = [(info.size or 0) if info else 0 for info in infos]
    if not all(sizes) or sum(sizes) > shutil.disk_usage(config.root).free:
        return nothing  # sizes unknown, or they do not fit: the disk check will say so
    partial = partial_dir(config.root)
    return prefetch.head_start(
        [(url, part_path_of(partial, name), info) for (url, name), info in zip(first, infos)],
        config.transfer,
    )


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
            f"{config.root} has {_size(free)} free but this run needs about "
            f"{_size(need)} ({len(tasks)} shards, {_size(fetched)} to fetch); "
            "free space, choose another --root, or select fewer clips (--classes, --max-per-class)"
        )
    return fetched


def _size(n: float) -> str:
    """Bytes for a message: ``1.3 GB``, ``700 KB`` (a small disk read "0.0 GB free")."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def _size_or_zero(url: str, config: DownloadConfig) -> int:
    info = _probe_or_none(url, config)
    return (info.size or 0) if info is not None else 0


def _probe_or_none(url: str, config: DownloadConfig) -> RemoteInfo | None:
    from kinetix.transfer.http import probe

    try:
        return probe(url, config.transfer)
    except ConnectError:
        raise  # the mirror cannot be reached at all: one line now, not one per shard
    except KinetixError:
        return None  # the task itself will report the failure with its reason


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
    settle: Callable[[], int] | None = None,
) -> None:
    """Run shard tasks and record each result as it comes.

    ``settle`` counts, once every task is in, the clips of ``total_clips`` no shard held, so
    the clips bar ends at its total instead of short of it by the gaps.

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
    executor, fn = shard_executor(config, progress, stop)
    by_id = {t.shard_id: t for t in tasks}

    def record(result: TaskResult) -> None:
        if result.error_code == INTERRUPTED or (result.error and stop.is_set()):
            return  # stopped part way: the partial stays, nothing to record
        _record_shard(manifest, result, by_id, report, progress, stop)

    try:
        with stop.running():
            # A full disk sets ``stop`` in ``_record_shard``: nothing more is handed out, and
            # the shards in flight still come back here, each recording what it placed.
            run_tasks(tasks, fn, executor, on_result=record, kind=TaskKind.IO, stop=stop)
            if settle is not None and not stop.is_set():
                progress.settle(settle(), "not in any shard")
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
        ok = sum(placed(u) for u in result.updates)
        progress.add_clips(ok, failed=len(result.updates) - ok)
    else:
        report.shards_failed += 1
        report.errors.append(result.error)
        if result.error_code == ErrorCode.NO_SPACE.value:
            # Every other shard would fail the same way: stop them, keep their partials.
            report.fatal = True
            stop.set()
    progress.task_done()


def shard_executor(
    config: DownloadConfig, progress: Progress, stop: StopToken
) -> tuple[Executor, Callable[[ShardTask], TaskResult]]:
    if config.executor.is_local:
        return LocalExecutor(config.parallel, io_workers=config.parallel), partial(
            fetch_shard, progress=progress.add_bytes, stop=stop
        )
    return cluster_executor(config, tools=()), fetch_shard
