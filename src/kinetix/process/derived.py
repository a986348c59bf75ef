"""A dataset made from another root (``process``, ``frames``): its manifest, lock and settings."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Protocol

from kinetix.bulk import paused_gc
from kinetix.catalog.clip import Clip
from kinetix.catalog.downstream import get_downstream
from kinetix.config import ExecutorConfig
from kinetix.crashpoints import crash_point
from kinetix.errors import ConfigError, ErrorCode
from kinetix.executors import Executor, LocalExecutor, Preflight, TaskKind, open_executor, run_tasks
from kinetix.executors.preflight import AV_TOOL
from kinetix.interrupts import StopToken
from kinetix.process.ffmpeg import FFMPEG_TOOL
from kinetix.process.reconcile import row_relpath
from kinetix.process.writer import ManifestWriter
from kinetix.progress import Progress
from kinetix.store.downstream import annotation_copy, copy_downstream, keep_copy
from kinetix.store.layout import (
    LabelStyle,
    manifest_path,
    partial_dir,
    slurm_logs,
)
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest
from kinetix.store.root import DatasetRoot
from kinetix.store.rows import WORK_COLUMNS, RowKey, WorkRow, tuple_field

log = logging.getLogger(__name__)


@dataclass
class DerivedReport:
    """What one ``process`` or ``frames`` run did; the CLI prints it, tests assert on it."""

    source: Path
    out: Path
    planned: int = 0
    done: int = 0
    skipped: int = 0  # already done by an earlier run, output intact
    redone: int = 0  # outputs found incomplete or stale and made again
    failed_before: int = 0  # failed for good in an earlier run, source unchanged: not retried
    failed: Counter[str] = field(default_factory=Counter)  # error code -> clips
    failures: list[str] = field(default_factory=list)  # "relpath: code: message", first ones
    frames: int = 0  # frames written (frames) or encoded (process)
    bytes_written: int = 0
    errors: list[str] = field(default_factory=list)  # real errors that stopped the run
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Clips made per second."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def record(self, update: ClipUpdate, relpath: str) -> bool:
        """Count one worker result; False when it failed."""
        if update.fields.get("state") == ClipState.PRESENT.value:
            self.done += 1
            self.bytes_written += int(update.fields.get("bytes") or 0)
            self.frames += int(update.fields.get("num_frames") or 0)
            return True
        code = str(update.fields.get("error_code"))
        message = str(update.fields.get("error_message"))
        self.failed[code] += 1
        if len(self.failures) < 20:
            self.failures.append(f"{relpath}: {code}: {message}")
        log.warning("%s: %s: %s", relpath, code, message)
        return False


# what a derived run reads of each source row: the WorkRow's columns, then four more
SOURCE_COLUMNS = (*WORK_COLUMNS, "label_index", "is_cc", "verify", "num_frames")
_at = SOURCE_COLUMNS.index


class SourceClip(WorkRow):
    """A source clip of a derived run: its ``WorkRow``, then the four columns only a derived
    run reads (``SOURCE_COLUMNS``): one flat tuple per clip, made in C like a ``WorkRow``
    (a full ClipRow per clip is heavy at 650k)."""

    __slots__ = ()
    label_index: int | None = tuple_field(_at("label_index"))
    is_cc: int | None = tuple_field(_at("is_cc"))
    verify: str | None = tuple_field(_at("verify"))
    num_frames: int | None = tuple_field(_at("num_frames"))

    def __repr__(self) -> str:
        return f"SourceClip{tuple(self)!r}"

    def to_clip(self) -> Clip:
        cc = None if self.is_cc is None else bool(self.is_cc)
        return Clip(
            self.release, self.split, self.youtube_id, self.time_start, self.time_end,
            self.label, cc,
        )  # fmt: skip


_source_clip = partial(tuple.__new__, SourceClip)


def source_clips(manifest: Manifest) -> list[SourceClip]:
    """The clips of a source root to derive from: present and not verified bad, in manifest
    order. One tuple per row made in C, with the collector paused: at 650k rows its passes
    over the rows read so far cost more than reading them."""
    with paused_gc():
        rows = manifest.select(
            SOURCE_COLUMNS, states=[ClipState.PRESENT], skip_verified_bad=True, order=True
        )
        return list(map(_source_clip, rows))  # type: ignore[arg-type]


class DoneRow(NamedTuple):
    """The output columns that say whether an earlier output can be kept."""

    state: str
    bytes: int | None
    num_frames: int | None
    has_audio: int | None
    error_code: str | None
    updated_at: float | None


@dataclass(frozen=True)
class Work:
    """One source clip whose output is to be made."""

    row: SourceClip
    src: Path
    dest: Path
    relpath: str  # of the output, relative to the output root


class DerivedDataset:
    """The output root of a run that reads a video root and writes another one.

    Opening it checks the two roots make sense together, takes the output's lock, records
    ``kind``/``release``/``layout``/``source_root`` and the settings the output is made with
    (a rerun with other settings into the same folder is refused rather than mixed), and
    clears ``.kinetix/partial`` of what a killed run left there.
    """

    def __init__(self, source: Path, out: Path, *, kind: str, settings: dict[str, Any]):
        self.source = Path(source).absolute()
        self.out = Path(out).absolute()
        self.kind = kind
        self.settings = settings
        self._source_root: DatasetRoot | None = None
        self._out_root: DatasetRoot | None = None
        self._layout = LabelStyle.RAW

    @property
    def manifest(self) -> Manifest:
        assert self._out_root is not None, "open() the dataset first"
        return self._out_root.manifest

    @property
    def source_manifest(self) -> Manifest:
        assert self._source_root is not None, "open() the dataset first"
        return self._source_root.manifest

    @property
    def partial(self) -> Path:
        return partial_dir(self.out)

    def open(self) -> DerivedDataset:
        src = self.source.resolve()
        out = self.out.resolve()
        if out == src or src in out.parents:
            raise ConfigError(
                f"--out {self.out} is inside the source root {self.source}; "
                "choose a folder outside it"
            )
        self._source_root = DatasetRoot.open(self.source)
        source_meta = self._source_root.meta
        self._layout = source_meta.label_style
        if not source_meta.is_videos:
            self.close()
            raise ConfigError(
                f"{self.source} is a {source_meta.kind} dataset; {self.kind} reads video datasets"
            )
        try:
            self._out_root = DatasetRoot.open(
                self.out, write=True, fix="choose a writable --out (nothing was written)"
            )
            self._record_meta()
            shutil.rmtree(self.partial, ignore_errors=True)
            self.partial.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.close()
            raise
        return self

    def _record_meta(self) -> None:
        assert self._out_root is not None and self._source_root is not None
        m, have, src = self.manifest, self._out_root.meta, self._source_root.meta
        kind = have.recorded_kind
        if kind not in (None, self.kind):
            raise ConfigError(
                f"{self.out} already holds a {kind} dataset; choose another --out for {self.kind}"
            )
        wanted = json.dumps(self.settings, sort_keys=True)
        if have.settings is not None and have.settings != wanted:
            before = json.loads(have.settings)
            diff = ", ".join(
                f"{k} {before.get(k)!r} (now {v!r})"
                for k, v in sorted(self.settings.items())
                if before.get(k) != v
            )
            raise ConfigError(
                f"{self.out} was made with other settings: {diff}; choose another --out, "
                "or delete it to start over"
            )
        source_root = have.source_root
        if source_root is not None and source_root != str(self.source):
            raise ConfigError(
                f"{self.out} was made from {source_root}, not {self.source}; choose another --out"
            )
        self._out_root.record(
            kind=self.kind, settings=wanted, source_root=str(self.source),
            release=src.release, layout=src.layout,
        )  # fmt: skip
        # a Countix / AVA-Kinetics root's rows, on this root's clips
        copy_downstream(self.source_manifest, m)
        info = src.downstream
        if info is not None:
            for split in info.splits:
                member = get_downstream(info.release).member(split)
                keep_copy(annotation_copy(self.source, member), annotation_copy(self.out, member))

    def source_rows(self) -> list[SourceClip]:
        """Clips to derive from: present in the source and not verified bad."""
        return source_clips(self.source_manifest)

    def done_rows(self) -> dict[tuple[str, str, str], DoneRow]:
        """What the output manifest says of each clip, by (release, split, key)."""
        rows = self.manifest.select(("release", "split", "key", *DoneRow._fields))
        return {(r[0], r[1], r[2]): DoneRow(*r[3:]) for r in rows}

    def source_relpath(self, row: SourceClip) -> str:
        """The source clip's path relative to the source root."""
        return row_relpath(row, self._layout)

    def register(self, rows: list[SourceClip]) -> None:
        """Give every source row a row in the output manifest (kept as is when already there)."""
        index = {r.label: r.label_index for r in rows if r.label is not None}
        known = {k: v for k, v in index.items() if v is not None}
        self.manifest.add_clips((r.to_clip() for r in rows), known)

    def plan(
        self,
        report: DerivedReport,
        *,
        relpath: Callable[[str], str],
        problem: Callable[[DoneRow | None, Path, float], str | None],
        retry_failed: bool = False,
    ) -> list[Work]:
        """The source clips whose output is missing, incomplete or stale.

        ``relpath`` maps a source clip path to its output path; ``problem`` says why an
        earlier output cannot be kept (None: keep it). Outputs about to be redone are marked
        missing first, so the manifest never calls a broken output present. A clip that
        failed for a permanent reason is not retried until its source changes (or
        ``retry_failed``): rerunning a finished job does no new work.
        """
        rows = self.source_rows()
        self.register(rows)
        done = self.done_rows()
        work: list[Work] = []
        stale: list[ClipUpdate] = []
        for row in rows:
            source_rel = self.source_relpath(row)
            rel = relpath(source_rel)
            src, dest = self.source / source_rel, self.out / rel
            try:
                src_mtime = src.stat().st_mtime
            except OSError:
                src_mtime = 0.0  # gone since it was recorded: the worker says so for the row
            previous = done.get((row.release, row.split, row.key))
            if not retry_failed and _failed_for_good(previous, src_mtime):
                report.failed_before += 1
                continue
            why = problem(previous, dest, src_mtime)
            if why is None:
                report.skipped += 1
                continue
            if previous is not None and previous.state == ClipState.PRESENT.value:
                log.warning("%s: %s; making it again", rel, why)
                report.redone += 1
                stale.append(redo_update(row, why))
            work.append(Work(row, src, dest, rel))
        self.manifest.apply(stale)
        report.planned = len(work)
        return work

    def run(
        self,
        tasks: Sequence[Any],
        fn: Callable[[Any], ClipUpdate],
        executor: Executor,
        report: DerivedReport,
        emit: Callable[[str], None] | None = None,
        stop: StopToken | None = None,
    ) -> None:
        """Map ``fn`` over ``tasks`` on ``executor`` and apply every result.

        A full disk stops the run: every further clip would fail the same way, and what is
        done stays done for the rerun. ``stop`` set (Ctrl-C, SIGTERM): the tasks in flight are
        abandoned, what finished is recorded, then ``Interrupted`` is raised.
        """
        stop = stop or StopToken()
        relpaths = {(t.release, t.split, t.key): t.relpath for t in tasks}
        progress = Progress(self.kind, total_clips=len(tasks), emit=emit)
        phase = "frames.record" if self.kind == "frames" else "process.record"
        try:
            with ManifestWriter(self.manifest) as writer, stop.running():

                def record(update: ClipUpdate) -> bool:
                    if stop.is_set() and update.fields.get("state") != ClipState.PRESENT.value:
                        return False  # a failure after the stop may be the stop's doing
                    writer.add(update)
                    crash_point(phase)
                    ok = report.record(update, relpaths[(update.release, update.split, update.key)])
                    progress.add_clips(1 if ok else 0, failed=0 if ok else 1)
                    if update.fields.get("error_code") == ErrorCode.NO_SPACE.value:
                        report.errors.append(
                            f"{self.out}: no space left on device after {report.done} clips; "
                            "free some space and rerun the same command to resume"
                        )
                        return True
                    return False

                run_tasks(
                    tasks,
                    fn,
                    executor,
                    on_result=record,
                    kind=TaskKind.CPU,
                    stop=stop,
                    abandon=True,
                )
        finally:
            progress.close()
        stop.raise_if_signalled()

    def open_executor(
        self, config: ExecutorConfig, workers: int | None, *, needed: bool = True
    ) -> Executor:
        """The stage's executor; cluster workers must see the source and write the output.

        ``needed=False`` (nothing planned): an inline executor, so a rerun of a finished job
        starts no cluster and submits no SLURM job.
        """
        if not needed:
            return LocalExecutor(0)
        preflight = Preflight(
            self.partial, visible=(manifest_path(self.source),), tools=(FFMPEG_TOOL, AV_TOOL)
        )
        return open_executor(
            config, workers, preflight=preflight, log_directory=slurm_logs(self.out)
        )

    def close(self) -> None:
        try:
            if self._out_root is not None:
                self._out_root.close()  # its manifest, then its lock
        finally:
            if self._source_root is not None:
                self._source_root.close()
            self._out_root = self._source_root = None

    def __enter__(self) -> DerivedDataset:
        return self.open()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if t is None:
            from kinetix.card import write_root_card

            write_root_card(self.out)


class DerivedTask(RowKey, Protocol):
    """What a process/frames worker task says about its clip."""

    @property
    def src(self) -> str: ...


def failed_update(task: DerivedTask, code: ErrorCode, message: str) -> ClipUpdate:
    """A worker's result for a clip it could not make (the reason kept, the run goes on)."""
    fields = {"state": ClipState.FAILED.value, "error_code": code.value,
              "error_message": message[:500], "origin": task.src, "source": "derived"}  # fmt: skip
    return ClipUpdate(task.release, task.split, task.key, fields, count_attempt=True)


def redo_update(row: RowKey, problem: str) -> ClipUpdate:
    """The row of an output about to be redone: not present until it is whole again."""
    code, _, _ = problem.partition(":")
    known = code in {c.value for c in ErrorCode}
    fields = {"state": ClipState.MISSING.value, "error_code": code if known else None,
              "error_message": problem}  # fmt: skip
    return ClipUpdate(row.release, row.split, row.key, fields)


def _failed_for_good(row: DoneRow | None, src_mtime: float) -> bool:
    if row is None or row.state != ClipState.FAILED.value:
        return False
    try:
        transient = ErrorCode(row.error_code).transient
    except ValueError:
        transient = True
    return not transient and (row.updated_at or 0.0) >= src_mtime
