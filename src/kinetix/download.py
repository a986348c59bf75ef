"""The download job: plan the clips a root is missing, fetch them from CVDF and/or YouTube, record.

catalog -> manifest rows (one per selected clip) -> work (missing, quarantined, failed on request)
-> CVDF shard tasks (then, for K400, the replacement set) -> YouTube clip tasks for what is still
missing (``--source youtube|auto``) -> each result applied to the manifest by this one process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kinetix.bulk import paused_gc
from kinetix.catalog.downstream import downstream_name
from kinetix.catalog.releases import CVDF_BASE, Release, check_split, get_release, join_url
from kinetix.config import DownloadConfig, Selection, SourceKind, VerifyConfig
from kinetix.crashpoints import crash_point
from kinetix.durable import require_writable
from kinetix.errors import ConfigError, ConnectError, DiskSpaceError, ErrorCode, KinetixError
from kinetix.executors import (
    Again,
    Executor,
    LocalExecutor,
    Preflight,
    TaskKind,
    open_executor,
    run_tasks,
)
from kinetix.executors.preflight import AV_TOOL, YT_DLP_TOOL, Tool
from kinetix.interrupts import StopToken, stop_on_signals
from kinetix.progress import Progress
from kinetix.sources.base import TaskResult
from kinetix.sources.cvdf import (
    INTERRUPTED,
    ShardPlan,
    ShardTask,
    fetch_shard,
    finish_part,
    plan_shards,
    read_path_list,
    shard_id,
    shard_task,
    unplaced,
)
from kinetix.store.downstream import DownstreamSplitCounts
from kinetix.store.layout import (
    LabelStyle,
    clip_folders,
    clip_relpath,
    manifest_path,
    missing_manifest_error,
    partial_dir,
    slurm_logs,
    state_dir,
)
from kinetix.store.leftovers import writing
from kinetix.store.lock import RootLock
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest, manifest_absent
from kinetix.store.planning import (
    WorkRow,
    record_registration,
    recorded_registration,
    registered_rows,
    selected_rows,
    work_rows,
)
from kinetix.store.presence import mark_vanished
from kinetix.store.root import RootMeta, write_root_meta

if TYPE_CHECKING:
    from kinetix.process.landing import LandingSpec

log = logging.getLogger(__name__)

_CVDF_SOURCES = frozenset({"cvdf", "cvdf_replacement"})
# A clip's copy in a shard refused for what it is (not for how the transfer went).
_REFUSED = frozenset(
    code.value
    for code in (
        ErrorCode.UNSAFE_MEMBER,
        ErrorCode.OVERSIZED_MEMBER,
        ErrorCode.DUPLICATE_MEMBER,
    )
)
# Every state but present: what a rerun reads row by row.
NOT_PRESENT = tuple(s.value for s in ClipState if s is not ClipState.PRESENT)
# A replacement set that is not on the mirror at all.
_ABSENT = frozenset({ErrorCode.HTTP_404.value, ErrorCode.NOT_AN_ARCHIVE.value})


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
    # clips a shard held whose copy was refused (unsafe, oversized, twice, not a whole MP4) or,
    # in K400 train, set aside: key -> code; they are not "in no shard"
    refused_keys: dict[str, str] = field(default_factory=dict)
    shards_done: int = 0
    shards_failed: int = 0
    bytes_transferred: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: bool = False  # a failure (disk full) that stopped the run early
    seconds: float = 0.0
    # ``download countix|ava-kinetics``: the annotation rows and their clips after the run
    downstream: DownstreamSplitCounts | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def not_present(self) -> int:
        """Selected clips still not on disk after the run (failed, gaps, or never reached)."""
        return max(self.selected - self.already_present - len(self.placed_keys), 0)

    @property
    def quarantined(self) -> Counter[str]:
        """Clips set aside by the inline check and not placed since, by error code."""
        return Counter(self.quarantined_keys.values())

    @property
    def held_keys(self) -> set[str]:
        """Clips a shard held but whose copy was not placed (refused or set aside)."""
        return set(self.quarantined_keys) | set(self.refused_keys)

    @property
    def placed(self) -> Counter[str]:
        """Clips placed by this run, by source (a replaced clip counts once, as replaced)."""
        return Counter(self.placed_keys.values())


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
        stop_on_signals() as stop,
        RootLock(config.root),
        Manifest(manifest_path(config.root)) as manifest,
        writing(config.root, manifest),  # a killed run's temps and spent .part files go first
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
        with paused_gc():
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
        with paused_gc():
            missing = manifest.split_size(release.name, split, ClipState.MISSING)
            if fresh is None or missing != len(fresh):
                rows = selected_rows(manifest, release.name, split, keys, NOT_PRESENT)
            else:
                rows = fresh  # what reading them back would give, without 545k rows from SQL
            del fresh
            todo = [r for r in rows if needs_work(r, retry)]
        report.planned = len(todo)
        pending = replacement_pending(manifest, release, split)
        if (
            (todo or pending)
            and config.source in (SourceKind.CVDF, SourceKind.AUTO)
            and release.cvdf_dir
        ):
            run_cvdf(
                config, release, manifest, todo, labels, keys, catalog_size, report, emit,
                stop=stop,
            )  # fmt: skip
        if config.source in (SourceKind.YOUTUBE, SourceKind.AUTO):
            rows = selected_rows(manifest, release.name, split, keys, NOT_PRESENT)
            auto = config.source is SourceKind.AUTO
            yt = [r for r in rows if needs_work(r, retry, cvdf_gaps=auto)]
            if yt and not report.fatal:
                run_youtube(config, manifest, yt, report, emit, stop=stop)
        report.failed = Counter(
            r.error_code or "unknown"
            for r in selected_rows(manifest, release.name, split, keys, [ClipState.FAILED.value])
        )
    report.seconds = time.monotonic() - started
    return report


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
    selected_keys = [c.key for c in selected]
    keys = set(selected_keys)
    unknown = manifest.unknown_keys(release.name, split, keys)
    fresh = None
    if unknown:
        every = len(unknown) == len(keys)
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
    retry, auto = config.retry_failed, config.source is SourceKind.AUTO
    cvdf = config.source in (SourceKind.CVDF, SourceKind.AUTO) and release.cvdf_dir
    if cvdf and (replacement_pending(manifest, release, split) or any(
        needs_work(r, retry) for r in rows
    )):  # fmt: skip
        return False
    youtube = config.source in (SourceKind.YOUTUBE, SourceKind.AUTO)
    if youtube and any(needs_work(r, retry, cvdf_gaps=auto) for r in rows):
        return False
    report.selected = recorded["rows"]
    report.already_present = manifest.split_size(release.name, split, ClipState.PRESENT)
    report.failed = Counter(
        r.error_code or "unknown" for r in rows if r.state == ClipState.FAILED.value
    )
    return True


def archives_dir(root: Path) -> Path:
    """``--keep-archives``: ``ROOT/archives/{path under the CVDF base}``, beside the splits."""
    return Path(root) / "archives"


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


def landing_spec(config: DownloadConfig) -> LandingSpec | None:
    """Fused processing: what each clip becomes as it lands (None: the clip as fetched)."""
    if config.process is None and config.frames is None:
        return None
    from kinetix.process.ffmpeg import threads_per_job
    from kinetix.process.jpeg import resolve_encoder
    from kinetix.process.landing import LandingSpec

    derive = config.process or config.frames
    assert derive is not None
    # one clip at a time per shard in flight: the shards share the cores
    threads = derive.threads or threads_per_job(config.parallel)
    encoder = resolve_encoder(config.frames.encoder) if config.frames is not None else None
    return LandingSpec(
        process=config.process, frames=config.frames, keep_originals=config.keep_originals,
        threads=threads, **({"encoder": encoder} if encoder is not None else {}),
    )  # fmt: skip


_MISSING, _QUARANTINED = ClipState.MISSING.value, ClipState.QUARANTINED.value
_FAILED = ClipState.FAILED.value


def needs_work(row: WorkRow, retry: tuple[str, ...] | None, *, cvdf_gaps: bool = False) -> bool:
    """Missing and quarantined clips are work; failed ones when asked (and CVDF gaps for auto).

    A clip CVDF failed to give (no shard holds it, or the copy it holds is broken) is a gap
    YouTube can fill under ``--source auto``.
    """
    state = row.state
    if state in (_MISSING, _QUARANTINED):
        return True
    if state != _FAILED:
        return False
    if cvdf_gaps and row.source in _CVDF_SOURCES:
        # no shard held it (not_in_shard), or the copy one held failed the inline check
        return True
    if retry is None:
        return False
    return not retry or row.error_code in retry


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
        if code is not None and code not in _REFUSED:  # set aside by the check, for good now
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
    executor, fn = _shard_executor(config, progress, stop)
    by_id = {t.shard_id: t for t in tasks}

    def record(result: TaskResult) -> bool:
        apply_result(manifest, result, report)
        task = by_id[result.shard_url or ""]
        progress.task_done()
        if result.error is None:
            finish_part(task)
            report.shards_done += 1
            progress.add_clips(len(result.updates))
            return False
        report.shards_failed += 1
        report.errors.append(result.error)
        if result.error_code == ErrorCode.NO_SPACE.value:
            report.fatal = True
            return True
        return False

    try:
        with stop.running():
            results = executor.map_unordered(fn, stop.guard(tasks), kind=TaskKind.IO)
            for result in results:
                if result.error_code == INTERRUPTED or (result.error and stop.is_set()):
                    continue  # stopped part way: the partial stays, nothing to record
                _record_shard(manifest, result, by_id, report, progress, stop)
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
    if config.executor.is_local:
        return LocalExecutor(config.parallel, io_workers=config.parallel), partial(
            fetch_shard, progress=progress.add_bytes, stop=stop
        )
    return _cluster_executor(config, tools=()), fetch_shard


def _cluster_executor(config: DownloadConfig, tools: tuple[Tool, ...]) -> Executor:
    """Workers that see the root (its partial folder) and have ``tools``; one job per worker."""
    preflight = Preflight(partial_dir(config.root), tools=tools)
    return open_executor(
        config.executor, config.parallel, preflight=preflight, log_directory=slurm_logs(config.root)
    )


def apply_result(manifest: Manifest, result: TaskResult, report: DownloadReport) -> None:
    updates = [u for u in result.updates if not _unpresents(manifest, u, report)]
    if result.shard_url is None:
        manifest.apply(updates)
    else:
        members = result.shard_members if result.error is None else None
        manifest.apply_shard(result.shard_url, updates, result.shard_fields, members)
    report.bytes_transferred += result.bytes_transferred
    for u in updates:
        state = u.fields.get("state")
        if state == ClipState.PRESENT.value:
            report.placed_keys[u.key] = str(u.fields.get("source"))
            report.quarantined_keys.pop(u.key, None)  # the replacement set's good copy
            report.refused_keys.pop(u.key, None)
        elif state == ClipState.FAILED.value and u.fields.get("verify") == "bad":
            report.quarantined_keys[u.key] = str(u.fields.get("error_code"))
        elif u.fields.get("error_code") in _REFUSED or u.fields.get("verify") == "bad":
            report.refused_keys[u.key] = str(u.fields.get("error_code"))


def _unpresents(manifest: Manifest, update: ClipUpdate, report: DownloadReport) -> bool:
    """A shard's refused copy of a clip that another copy already placed: not recorded."""
    fields = update.fields
    if fields.get("state") == ClipState.PRESENT.value:
        return False
    if fields.get("error_code") not in _REFUSED and fields.get("verify") != "bad":
        return False
    if update.key in report.placed_keys:
        return True
    row = manifest.get(update.release, update.split, update.key)
    return row is not None and row.state == ClipState.PRESENT.value


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
    from kinetix.process.ffmpeg import FFMPEG_TOOL
    from kinetix.sources.youtube import TryOutcome, YoutubeSource, YoutubeTry
    from kinetix.sources.youtube.readiness import DENO_TOOL

    stop = stop or StopToken()
    landing = landing_spec(config)
    if landing is not None:
        from kinetix.process.landing import clear_stage

        clear_stage(config.root)
    source = YoutubeSource(config.root, config.youtube, config.layout, landing=landing)
    tasks = source.plan(rows)
    progress = Progress(
        "youtube",
        total_clips=len(tasks),
        bars=None if config.progress else False,
        emit=emit if config.progress else None,
    )
    executor: Executor
    if config.executor.is_local:
        executor = LocalExecutor(config.parallel, io_workers=config.parallel)
    else:
        executor = _cluster_executor(config, tools=(FFMPEG_TOOL, AV_TOOL, YT_DLP_TOOL, DENO_TOOL))

    def record(outcome: TryOutcome) -> Again[YoutubeTry] | None:
        verdict = source.settle(outcome)
        if isinstance(verdict, Again):
            return None if stop.is_set() else verdict  # stopped: the clip stays to do
        result = verdict
        if stop.is_set():  # a clip that failed now may have failed from the stop itself
            result = replace(result, updates=[u for u in result.updates if _placed(u)])
        apply_result(manifest, result, report)
        ok = sum(_placed(u) for u in result.updates)
        progress.add_clips(ok, failed=len(result.updates) - ok)
        return None

    # One try per dispatch, every one (retries too) through this process's gate: --rate,
    # Retry-After pauses and the breaker hold for all workers together, and at most --workers
    # clips are out at once, wherever they run.
    try:
        with stop.running():
            run_tasks(
                (YoutubeTry(t) for t in tasks), source.try_once, executor, on_result=record,
                kind=TaskKind.IO, pace=source.gate.reserve, in_flight=config.parallel, stop=stop,
            )  # fmt: skip
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
