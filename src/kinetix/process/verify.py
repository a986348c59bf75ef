"""The verify job: decode-check every present clip, record what it is, quarantine what is broken."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av

from kinetix.config import VerifyConfig, VerifyLevel
from kinetix.crashpoints import crash_point
from kinetix.errors import ConfigError, ErrorCode, KinetixError, MediaError
from kinetix.executors import Preflight, TaskKind, open_executor, run_tasks
from kinetix.executors.preflight import AV_TOOL
from kinetix.interrupts import WORKERS_NOTE, StopToken, stop_on_signals
from kinetix.process.ffmpeg import FFMPEG_TOOL
from kinetix.process.probe import VideoInfo, libav_reason, open_video, read_info
from kinetix.process.reconcile import Reconciliation, fix_root, root_layout, row_relpath, scan_root
from kinetix.process.writer import ManifestWriter
from kinetix.progress import Progress
from kinetix.store.layout import manifest_path, quarantine_dir, slurm_logs, state_dir
from kinetix.store.leftovers import writing
from kinetix.store.manifest import ClipRow, ClipState, ClipUpdate, Manifest
from kinetix.store.root import DatasetRoot, read_root_meta

log = logging.getLogger(__name__)

RefetchFn = Callable[[Path, list[tuple[str, str, str]]], int]


# --- one clip ---------------------------------------------------------------------------------


def check_video(
    path: str | os.PathLike[str], level: VerifyLevel = VerifyLevel.QUICK, *, tail: bool = True
) -> VideoInfo:
    """Probe ``path`` and decode its first and last frame (every frame when ``deep``).

    ``tail=False`` leaves out the quick check's decode of the last GOP (on a clip with one
    keyframe, a decode of the whole clip): for a caller about to decode every frame anyway
    and check what that decode made (fused processing).

    Every packet of every stream is read either way (cheap: no decoding), so a file cut
    short anywhere, even in its last audio packet, is ``truncated``. Returns what the clip
    really is, as a player shows it: duration from the first to the last decoded frame,
    frame count without the frames an edit list hides. Raises ``MediaError`` with a stable
    code when it is not a usable video.
    """
    with open_video(path) as container:
        name = container.name
        info = read_info(container)
        stream = container.streams.video[0]
        if level is VerifyLevel.QUICK:
            # The quick check proves that every packet is whole and that the first and last
            # frames decode, not what their pixels are: deblocking only filters pixels
            # already reconstructed (it finds no error), so it is left out (~13% of H.264).
            stream.codec_context.options = {"skip_loop_filter": "all"}
        seen = _read_packets(container, stream, decode_all=level is VerifyLevel.DEEP)
        _check_complete(container, seen)
        if seen.first is None:
            raise MediaError(name, "no frame decodes", code=ErrorCode.ZERO_FRAMES)
        first, last, count = seen.first, seen.last, seen.decoded
        if level is VerifyLevel.QUICK and not tail:  # the index's duration, the packets' count
            return replace(info, num_frames=seen.shown)
        if level is VerifyLevel.QUICK:
            # one GOP: from the last keyframe to the end, whatever the index claims
            container.seek(seen.last_key or 0, stream=stream, backward=True, any_frame=False)
            # Frames no other frame refers to are dropped up to the last ones (what the last
            # frame needs is every reference frame, all decoded), see ``_TAIL_IN_FULL``.
            stream.codec_context.skip_frame = "NONREF"
            tail_seen = _read_packets(
                container, stream, decode_all=True, only=stream,
                in_full_after=seen.since_key - _TAIL_IN_FULL,
            )  # fmt: skip
            if tail_seen.last is None:
                reason = "no frame decodes after the last keyframe: the file was cut short"
                raise MediaError(name, reason, code=ErrorCode.TRUNCATED)
            last, count = tail_seen.last, seen.shown
    assert last is not None
    step = 1 / info.fps if info.fps else 0.0
    decoded = last - first + step
    expected_last = _expected_last(stream, info)
    if expected_last is not None and last < expected_last - 1.5 * step - 0.05:
        reason = (
            f"the last frame decodes at {last:.2f} s but the index promises "
            f"{expected_last:.2f} s: the file was cut short"
        )
        raise MediaError(name, reason, code=ErrorCode.TRUNCATED)
    return replace(info, duration=decoded if decoded > 0 else info.duration, num_frames=count)


# The quick check's tail decodes its last packets whole, non-reference frames too: the frame
# shown last is among them (H.264 reorders at most 16 frames), so its time is what it is.
_TAIL_IN_FULL = 16


def _expected_last(stream: Any, info: VideoInfo) -> float | None:
    """Time of the last frame according to the container index (None when it has none)."""
    if stream.duration is None or stream.time_base is None or not info.fps:
        return None
    start = float((stream.start_time or 0) * stream.time_base)
    return start + info.duration - 1 / info.fps


@dataclass
class _Packets:
    """What one pass over a file's packets found."""

    first: float | None = None  # time of the first decoded frame
    last: float | None = None
    decoded: int = 0  # frames decoded
    shown: int = 0  # video packets an edit list does not hide
    last_key: int | None = None  # pts of the last video keyframe
    since_key: int = 0  # video packets from the last keyframe (itself included) to the end
    per_stream: Counter[int] = field(default_factory=Counter)  # stream index -> packets
    cut: float | None = None  # time of a packet the file ends in the middle of


def _read_packets(
    container: Any,
    video: Any,
    *,
    decode_all: bool,
    only: Any = None,
    in_full_after: int | None = None,
) -> _Packets:
    """Read packets to the end, decoding the video until one frame is out (or all of them).

    ``in_full_after``: after that many video packets the decoder's ``skip_frame`` goes back
    to ``DEFAULT`` (the caller set it to skip some), so the rest decode whole.

    Times are float pts * time base: PyAV's Fraction arithmetic per packet would cost a
    third of the whole check on a 10 s clip.
    """
    seen = _Packets()
    counts = seen.per_stream
    video_index = video.index
    base = float(video.time_base)
    last_pts = None
    for packet in container.demux(only) if only is not None else container.demux():
        index = packet.stream_index
        size = packet.size
        if size:
            counts[index] += 1
        if packet.is_corrupt and seen.cut is None:
            pts = packet.pts
            seen.cut = 0.0 if pts is None else float(pts * packet.time_base)
        if index != video_index:
            continue
        pts = packet.pts
        if pts is not None:
            last_pts = pts
        if size and not packet.is_discard:
            if in_full_after is not None and seen.shown >= in_full_after:
                video.codec_context.skip_frame = "DEFAULT"
                in_full_after = None
            seen.shown += 1
            seen.since_key += 1
            if packet.is_keyframe and pts is not None:
                seen.last_key = pts
                seen.since_key = 1
        if not decode_all and seen.first is not None:
            continue
        try:  # the empty packet at the end flushes a decoder that still holds frames
            frames = packet.decode()
        except av.FFmpegError as exc:
            where = "" if last_pts is None else f" at {last_pts * base:.2f} s"
            code = ErrorCode.TRUNCATED if seen.cut is not None else ErrorCode.UNREADABLE
            reason = f"frame{where} does not decode ({libav_reason(exc)})"
            raise MediaError(container.name, reason, code=code) from None
        for frame in frames:
            if frame.pts is not None:
                t = frame.pts * base
                seen.first = t if seen.first is None else min(seen.first, t)
                seen.last = t if seen.last is None else max(seen.last, t)
                seen.decoded += 1
    return seen


def _check_complete(container: Any, seen: _Packets) -> None:
    """Every packet the index lists is in the file, whole (the demuxer flags a cut one)."""
    for stream in container.streams:
        listed, found = stream.frames, seen.per_stream[stream.index]
        if listed and found < listed:
            reason = (
                f"the index lists {listed} {stream.type} packets but the file holds {found}: "
                "the file was cut short"
            )
            raise MediaError(container.name, reason, code=ErrorCode.TRUNCATED)
    if seen.cut is not None:
        reason = f"the packet at {seen.cut:.2f} s is cut off: the file was cut short"
        raise MediaError(container.name, reason, code=ErrorCode.TRUNCATED)


def check_span(
    path: str, info: VideoInfo, span: float, start_offset: float, config: VerifyConfig
) -> None:
    """A clip far longer than its annotated span was not trimmed; one far shorter is a stub.

    Shorter is allowed down to ``min_fraction`` of the span: a clip whose YouTube video
    ended before ``time_end`` legitimately ends early (K700 has many 5-9 s clips).
    """
    if span <= 0:
        return
    # start_offset = first frame's time - time_start: a fast trim starts at the keyframe before
    # time_start (offset < 0) and so legitimately runs that much longer.
    longest = span + config.max_excess + max(-start_offset, 0.0)
    if info.duration > longest:
        reason = (
            f"lasts {info.duration:.2f} s but its annotation spans {span:g} s "
            f"(at most {longest:.2f} s accepted): not trimmed to the annotation"
        )
        raise MediaError(path, reason, code=ErrorCode.BAD_DURATION)
    shortest = span * config.min_fraction
    if info.duration < shortest:
        reason = (
            f"lasts {info.duration:.2f} s but its annotation spans {span:g} s "
            f"(at least {shortest:.2f} s expected)"
        )
        raise MediaError(path, reason, code=ErrorCode.BAD_DURATION)


@dataclass(frozen=True)
class VerifyTask:
    """One clip to check, with everything a worker on another machine needs."""

    release: str
    split: str
    key: str
    path: str  # absolute
    span: float  # time_end - time_start
    start_offset: float
    config: VerifyConfig


def inspect_clip(
    path: str | os.PathLike[str],
    span: float,
    start_offset: float = 0.0,
    config: VerifyConfig = VerifyConfig(),  # noqa: B008 - frozen, never mutated
    *,
    tail: bool = True,
) -> dict[str, Any]:
    """Check one clip file; the manifest fields saying what it is and ``verify`` good or bad.

    The one check every stage runs: ``verify`` on a root's clips, and each stage that writes
    a clip on its temp file before renaming it into place (inline verification), so a clip
    recorded ``good`` is usable by every reader with no further read.
    """
    fields: dict[str, Any] = {"verify_level": config.level.value, "verified_at": time.time()}

    def check() -> None:
        st = os.stat(path)
        fields.update(bytes=st.st_size, mtime=st.st_mtime)
        info = (
            check_video(path, config.level) if tail else check_video(path, config.level, tail=False)
        )
        fields.update(info.manifest_fields())
        check_span(str(path), info, span, start_offset, config)

    return _with_verdict(fields, check)


def _with_verdict(fields: dict[str, Any], check: Callable[[], None]) -> dict[str, Any]:
    """Run ``check`` (which fills ``fields``) and add ``verify`` good or bad with the reason:
    the one mapping of a failed check onto manifest fields, for clips and frame folders."""
    try:
        check()
    except MediaError as exc:
        # the row names the clip; the message says only what is wrong with it
        fields.update(verify="bad", error_code=exc.code.value, error_message=exc.reason[:500])
    except OSError as exc:
        fields.update(
            verify="bad",
            error_code=ErrorCode.UNREADABLE.value,
            error_message=f"cannot read: {exc.strerror or exc}",
        )
    else:
        fields.update(verify="good", error_code=None, error_message=None)
    return fields


def verify_clip(task: VerifyTask) -> ClipUpdate:
    """Worker: check one clip; the update says ``verify`` good or bad (with code and message)."""
    fields = inspect_clip(task.path, task.span, task.start_offset, task.config)
    crash_point("verify.task")
    return ClipUpdate(task.release, task.split, task.key, fields)


# --- one frame folder ------------------------------------------------------------------------

FRAME_PREFIX, FRAME_SUFFIX = "img_", ".jpg"


def frame_files(folder: Path) -> tuple[list[str], int]:
    """(sorted ``img_*.jpg`` names, bytes of every file) of a clip's frame folder."""
    names: list[str] = []
    size = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_file():
                continue
            size += entry.stat().st_size
            if entry.name.startswith(FRAME_PREFIX) and entry.name.endswith(FRAME_SUFFIX):
                names.append(entry.name)
    names.sort()
    return names, size


def _decode_image(path: Path) -> tuple[int, int]:
    """Decode one JPEG; its (width, height). A broken one raises ``MediaError``."""
    with open_video(path) as container:
        try:
            frame = next(container.decode(video=0), None)
        except av.FFmpegError as exc:
            reason = f"{path.name} does not decode ({libav_reason(exc)})"
            raise MediaError(str(path), reason, code=ErrorCode.UNREADABLE) from None
        if frame is None:
            raise MediaError(str(path), f"{path.name} holds no image", code=ErrorCode.UNREADABLE)
        return frame.width, frame.height


def inspect_frames(
    folder: str | os.PathLike[str],
    expected: int | None = None,
    level: VerifyLevel = VerifyLevel.QUICK,
) -> dict[str, Any]:
    """Check one frame folder: ``img_00001.jpg`` .. ``img_{n}.jpg`` all there (``expected`` of
    them when given), the first and last (``deep``: every one) decode, at one size.

    Returns manifest fields like ``inspect_clip``: ``verify`` good or bad with the reason.
    """
    folder = Path(folder)
    fields: dict[str, Any] = {"verify_level": level.value, "verified_at": time.time()}

    def check() -> None:
        names, size = frame_files(folder)
        fields["bytes"] = size
        if not names:
            raise MediaError(str(folder), "holds no img_*.jpg frame", code=ErrorCode.ZERO_FRAMES)
        count = len(names)
        if names[-1] != f"{FRAME_PREFIX}{count:05d}{FRAME_SUFFIX}":
            reason = f"{count} frames but the last is {names[-1]}: frames are missing"
            raise MediaError(str(folder), reason, code=ErrorCode.MISSING_FRAMES)
        if expected is not None and count != expected:
            reason = f"{count} frames on disk, {expected} expected"
            raise MediaError(str(folder), reason, code=ErrorCode.MISSING_FRAMES)
        check = names if level is VerifyLevel.DEEP else [names[0], names[-1]]
        sizes = {_decode_image(folder / name) for name in check}
        if len(sizes) > 1:
            seen = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
            reason = f"frames of different sizes ({seen})"
            raise MediaError(str(folder), reason, code=ErrorCode.UNREADABLE)
        ((width, height),) = sizes
        fields.update(num_frames=count, width=width, height=height)

    return _with_verdict(fields, check)


# --- the job ----------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What one verify run found; the CLI prints it, tests assert on it."""

    root: Path
    level: VerifyLevel
    checked: int = 0
    good: int = 0
    bad: Counter[str] = field(default_factory=Counter)  # error code -> clips
    quarantined: list[str] = field(default_factory=list)  # relpaths moved aside this run
    skipped: int = 0  # verified before at this level or deeper, file unchanged
    unknown: list[str] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    added: int = 0
    marked_missing: int = 0
    refetched: int | None = None  # clips present again after --refetch
    refetch_asked: int = 0
    errors: list[str] = field(default_factory=list)  # real errors (a clip could not be moved)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Clips checked per second."""
        return self.checked / self.seconds if self.seconds > 0 else 0.0


def verify_dataset(
    root: str | os.PathLike[str],
    config: VerifyConfig,
    *,
    emit: Callable[[str], None] | None = None,
    refetch: RefetchFn | None = None,
) -> VerifyReport:
    """Run ``kinetix verify``: check every present clip of ``root``, resumably, in parallel.

    With ``config.refetch``, ``refetch(root, keys)`` fetches the quarantined clips again once
    the root is unlocked: the caller passes ``kinetix.download.refetch`` (the CLI does), so
    ``process/`` does not import the download job that sits above it.
    """
    root = Path(root)
    if config.refetch and refetch is None:  # fail before the work, not after it
        raise ConfigError(
            "--refetch needs kinetix.download.refetch: pass verify_dataset(..., "
            "refetch=kinetix.download.refetch) (the CLI does); nothing was verified"
        )
    if not config.refetch:
        refetch = None
    report = VerifyReport(root, config.level)
    meta = read_root_meta(root)
    if not (meta.is_videos or meta.is_frames):
        raise ConfigError(
            f"{root} is a {meta.kind} dataset; verify checks video and frames datasets"
        )
    frames = meta.is_frames
    with (
        stop_on_signals(note=WORKERS_NOTE, level=logging.INFO) as stop,
        DatasetRoot.open(root, write=True) as ds,
        writing(root, ds.manifest),
    ):
        manifest = ds.manifest
        report.quarantined.extend(finish_quarantines(root, manifest))
        rec = scan_frames(root, manifest) if frames else scan_root(root, manifest)
        _note_reconciliation(report, rec)
        if config.fix:
            fixes = fix_root(root, manifest, rec)
            report.added, report.marked_missing = fixes.added, fixes.marked_missing
        tasks: list[Any]
        if frames:
            tasks = _plan_frames(root, manifest, rec, config, report)
        else:
            tasks = _plan(root, manifest, rec, config, report)
        started = time.monotonic()
        task_fn = verify_folder if frames else verify_clip
        _run(root, manifest, tasks, config, report, emit, task_fn, stop)
        report.seconds = time.monotonic() - started
    from kinetix.card import write_root_card

    write_root_card(root)  # its counts now say what verify found (quarantined, missing)
    if refetch is not None:
        with Manifest(manifest_path(root), readonly=True) as manifest:
            keys = [
                (r.release, r.split, r.key) for r in manifest.clips(states=[ClipState.QUARANTINED])
            ]
        report.refetch_asked = len(keys)
        if keys:  # after the lock is released: the download takes it itself
            try:
                report.refetched = refetch(root, keys)
            except KinetixError as exc:  # the verify results stand; say why the refetch did not
                report.errors.append(f"--refetch failed: {exc}")
    return report


def _note_reconciliation(report: VerifyReport, rec: Reconciliation) -> None:
    report.unknown = list(rec.unknown)
    report.unrecognised = list(rec.unrecognised)
    report.vanished = [r.path or r.key for r in rec.vanished]
    report.changed = [r.path or r.key for r in rec.changed]
    # the CLI prints these as its summary; the log keeps them for library callers
    if rec.unknown:
        log.info(
            "%d clip files are not in the manifest (e.g. %s)", len(rec.unknown), rec.unknown[0]
        )
    if rec.vanished:
        log.info("%d clips recorded as present are gone from disk", len(rec.vanished))
    if rec.changed:
        log.info("%d clips changed size since they were recorded", len(rec.changed))


def _plan(
    root: Path,
    manifest: Manifest,
    rec: Reconciliation,
    config: VerifyConfig,
    report: VerifyReport,
) -> list[VerifyTask]:
    layout = root_layout(manifest)
    # A clip whose size changed since it was recorded is checked again like any unverified
    # one (``_already_verified`` compares sizes): a cut-short copy is what verify is for.
    vanished = {(r.release, r.split, r.key) for r in rec.vanished}
    tasks = []
    for row in manifest.clips(states=[ClipState.PRESENT]):
        ident = (row.release, row.split, row.key)
        if ident in vanished:
            continue
        rel = row_relpath(row, layout)
        if _already_verified(row, rec.files.get(rel), config.level):
            report.skipped += 1
            continue
        offset = row.values.get("start_offset") or 0.0
        tasks.append(
            VerifyTask(
                row.release, row.split, row.key, str(root / rel),
                float(row.time_end - row.time_start), float(offset), config,
            )
        )  # fmt: skip
    return tasks


@dataclass(frozen=True)
class FolderTask:
    """One frame folder to check (a frames root's clip)."""

    release: str
    split: str
    key: str
    path: str  # absolute
    expected: int | None  # frames recorded when it was made
    level: VerifyLevel


def verify_folder(task: FolderTask) -> ClipUpdate:
    """Worker: check one frame folder (see ``inspect_frames``)."""
    fields = inspect_frames(task.path, task.expected, task.level)
    return ClipUpdate(task.release, task.split, task.key, fields)


def scan_frames(root: Path, manifest: Manifest) -> Reconciliation:
    """A frames root's present rows whose folder is gone (frames roots hold no clip files)."""
    layout = root_layout(manifest)
    rec = Reconciliation()
    for row in manifest.clips(states=[ClipState.PRESENT]):
        if not (root / row_relpath(row, layout)).is_dir():
            rec.vanished.append(row)
    return rec


def _plan_frames(
    root: Path,
    manifest: Manifest,
    rec: Reconciliation,
    config: VerifyConfig,
    report: VerifyReport,
) -> list[FolderTask]:
    """Every present folder, but those verified at this level whose frames and bytes still
    match what was recorded (listing a folder is what it costs to know)."""
    layout = root_layout(manifest)
    vanished = {(r.release, r.split, r.key) for r in rec.vanished}
    tasks = []
    for row in manifest.clips(states=[ClipState.PRESENT]):
        if (row.release, row.split, row.key) in vanished:
            continue
        folder = root / row_relpath(row, layout)
        expected = row.values.get("num_frames")
        if _already_verified(row, None, config.level, check_stat=False):
            names, size = frame_files(folder)
            if len(names) == expected and size == row.values.get("bytes"):
                report.skipped += 1
                continue
        tasks.append(
            FolderTask(row.release, row.split, row.key, str(folder), expected, config.level)
        )
    return tasks


def _already_verified(
    row: ClipRow, stat: Any, level: VerifyLevel, *, check_stat: bool = True
) -> bool:
    if row.values.get("verify") != "good" or (check_stat and stat is None):
        return False
    try:
        done = VerifyLevel(row.values.get("verify_level"))
    except ValueError:
        return False
    if not check_stat:
        return done.rank >= level.rank
    return (
        done.rank >= level.rank
        and row.values.get("bytes") == stat.size
        and row.values.get("mtime") == stat.mtime
    )


def _run(
    root: Path,
    manifest: Manifest,
    tasks: list[Any],
    config: VerifyConfig,
    report: VerifyReport,
    emit: Callable[[str], None] | None,
    check: Callable[[Any], ClipUpdate],
    stop: StopToken,
) -> None:
    if not tasks:
        return
    paths = {(t.release, t.split, t.key): t.path for t in tasks}
    progress = Progress(f"verify ({config.level.value})", total_clips=len(tasks), emit=emit)
    preflight = Preflight(state_dir(root), tools=(FFMPEG_TOOL, AV_TOOL))
    executor = open_executor(
        config.executor, config.workers, preflight=preflight, log_directory=slurm_logs(root)
    )
    try:
        with ManifestWriter(manifest) as writer, stop.running():

            def record(update: ClipUpdate) -> None:
                crash_point("verify.record")
                report.checked += 1
                if update.fields["verify"] == "good":
                    report.good += 1
                    writer.add(update)
                    progress.add_clips(1)
                    return
                path = Path(paths[(update.release, update.split, update.key)])
                if not path.exists():  # deleted while we looked at it: missing, as --fix says
                    rel = path.relative_to(root).as_posix()
                    log.warning("%s: gone from disk during verify; marked missing", rel)
                    report.vanished.append(rel)
                    gone = {"state": ClipState.MISSING.value, "path": None, "verify": None}
                    writer.add(ClipUpdate(update.release, update.split, update.key, gone))
                    return
                report.bad[str(update.fields["error_code"])] += 1
                progress.add_clips(0, failed=1)
                _quarantine(root, path, update, report, writer)

            run_tasks(
                tasks, check, executor, on_result=record, kind=TaskKind.CPU, stop=stop, abandon=True
            )
    finally:
        executor.close()
        progress.close()
    stop.raise_if_signalled()


def _quarantine(
    root: Path, path: Path, update: ClipUpdate, report: VerifyReport, writer: ManifestWriter
) -> None:
    """Move a bad clip to ``.kinetix/quarantine/{split}/{label}/{key}.mp4`` and say so.

    The row is committed as quarantined *before* the file moves: a kill between the two leaves
    a quarantined row whose file still sits at its old path, which the next run's
    ``finish_quarantines`` moves. Moving first would leave a "present" row naming a path that
    no longer holds the clip, and nothing to say why it went.
    """
    rel = path.relative_to(root).as_posix()
    dest = quarantine_dir(root) / rel
    code, message = update.fields["error_code"], update.fields["error_message"]
    log.warning("%s: %s: %s; quarantined", rel, code, message)
    fields = dict(update.fields)
    fields.update(state=ClipState.QUARANTINED.value, path=dest.relative_to(root).as_posix())
    writer.add(ClipUpdate(update.release, update.split, update.key, fields))
    writer.flush()
    crash_point("verify.quarantine")
    try:
        _move_aside(path, dest)
    except OSError as exc:
        message = f"{rel}: bad ({update.fields['error_code']}) but could not be quarantined: {exc}"
        report.errors.append(message)
        log.error("%s", message)
        writer.add(update)  # verify=bad on a present row: loaders and process skip it
        writer.flush()
        return
    report.quarantined.append(rel)


def _move_aside(path: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir():  # a frame folder set aside before: the newer one replaces it
        shutil.rmtree(dest)
    os.replace(path, dest)
    with contextlib.suppress(OSError):  # an emptied label folder would be a class with no clips
        path.parent.rmdir()


def finish_quarantines(root: Path, manifest: Manifest) -> list[str]:
    """Move the clips a killed run recorded as quarantined but had not yet moved aside."""
    qdir = quarantine_dir(root)
    moved = []
    for row in manifest.clips(states=[ClipState.QUARANTINED]):
        if not row.path:
            continue
        dest = root / row.path
        try:
            rel = dest.relative_to(qdir)
        except ValueError:
            continue
        source = root / rel
        if dest.exists() or not source.exists():
            continue
        _move_aside(source, dest)
        log.warning("%s: recorded as quarantined by an interrupted run; moved aside now", rel)
        moved.append(rel.as_posix())
    return moved
