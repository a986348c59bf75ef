"""``kinetix process``: a derived video root, each clip resized, re-timed, re-encoded by ffmpeg."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinetix.config import ProcessConfig, VideoCodec
from kinetix.crashpoints import crash_point
from kinetix.errors import ErrorCode, FFmpegError, MediaError
from kinetix.interrupts import WORKERS_NOTE, stop_on_signals
from kinetix.process.derived import DerivedDataset, DerivedReport, DoneRow, failed_update
from kinetix.process.ffmpeg import error_code, error_tail, file_arg, run_ffmpeg, threads_per_job
from kinetix.process.filters import video_filters
from kinetix.process.probe import probe_video
from kinetix.process.verify import inspect_clip
from kinetix.store.manifest import ClipState, ClipUpdate

log = logging.getLogger(__name__)

_ENCODERS = {VideoCodec.H264: "libx264", VideoCodec.H265: "libx265"}


def encode_args(src: str, dest: str, config: ProcessConfig, threads: int) -> list[str]:
    """The ffmpeg arguments that turn ``src`` into ``dest`` (mp4) under ``config``."""
    t = str(threads)
    args = ["-filter_threads", t, "-threads", t, "-i", file_arg(src), "-map", "0:v:0"]
    if config.audio:
        args += ["-map", "0:a:0?", "-c:a", "copy"]  # mp4 to mp4: the audio is valid as it is
    else:
        args += ["-an"]
    vf = video_filters(fps=config.fps, short_side=config.short_side, upscale=config.upscale)
    if vf:
        args += ["-vf", vf]
    args += ["-c:v", _ENCODERS[config.codec], "-preset", config.preset, "-crf", str(config.crf)]
    args += ["-pix_fmt", "yuv420p", "-threads", t]
    if config.codec is VideoCodec.H265:
        # hvc1 so QuickTime/Safari play it; x265 prints its banner unless told otherwise
        args += ["-tag:v", "hvc1", "-x265-params", f"log-level=error:pools={threads}"]
    args += ["-movflags", "+faststart", "-map_metadata", "0", "-f", "mp4", "-y", file_arg(dest)]
    return args


@dataclass(frozen=True)
class TranscodeTask:
    """One clip to re-encode; paths are absolute, ``relpath`` is the same in both roots."""

    release: str
    split: str
    key: str
    relpath: str
    src: str
    dest: str
    tmp: str
    config: ProcessConfig
    threads: int


def transcode_clip(task: TranscodeTask) -> ClipUpdate:
    """Worker: encode into a temporary name, check the result, rename it into place."""
    tmp = Path(task.tmp)
    try:
        probe_video(task.src)  # an unreadable source says so here, not in ffmpeg's words
    except MediaError as exc:
        return failed_update(task, exc.code, exc.reason)
    try:
        run_ffmpeg(encode_args(task.src, task.tmp, task.config, task.threads))
        # verified before it is placed, like a downloaded clip; the source's span was checked
        # when it landed, so only what ffmpeg wrote is checked here (span 0: no span check)
        checked = inspect_clip(tmp, 0.0)
        if checked["verify"] != "good":
            code, reason = ErrorCode(checked["error_code"]), checked["error_message"]
            return failed_update(task, code, f"ffmpeg wrote an unusable file: {reason}")
        crash_point("process.task")
        Path(task.dest).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, task.dest)
        size = os.path.getsize(task.dest)
    except FFmpegError as exc:
        return failed_update(task, error_code(exc), error_tail(exc))
    except OSError as exc:
        code = ErrorCode.NO_SPACE if exc.errno == errno.ENOSPC else ErrorCode.UNKNOWN
        return failed_update(task, code, f"{task.dest}: {exc.strerror or exc}")
    finally:
        tmp.unlink(missing_ok=True)
    fields: dict[str, Any] = {
        **checked, "state": ClipState.PRESENT.value, "path": task.relpath, "bytes": size,
        "origin": task.src, "source": "derived",
    }  # fmt: skip
    return ClipUpdate(task.release, task.split, task.key, fields, count_attempt=True)


def output_problem(row: DoneRow | None, dest: Path, src_mtime: float) -> str | None:
    """Why an earlier output cannot be kept (None: it is whole and newer than its source)."""
    if row is None or row.state != ClipState.PRESENT.value:
        return "not processed"
    try:
        st = dest.stat()
    except OSError:
        return "the file is gone"
    if st.st_size != row.bytes:
        return f"{st.st_size} bytes on disk, {row.bytes} recorded"
    if st.st_mtime < src_mtime:
        return "stale: the source clip is newer"
    return None


def process_settings(config: ProcessConfig) -> dict[str, Any]:
    """What a derived root's clips are made with: a rerun into it must agree."""
    return {
        "short_side": config.short_side, "fps": config.fps, "upscale": config.upscale,
        "crf": config.crf, "preset": config.preset, "codec": config.codec.value,
        "audio": config.audio,
    }  # fmt: skip


def process_dataset(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: ProcessConfig,
    *,
    emit: Callable[[str], None] | None = None,
) -> DerivedReport:
    """Run ``kinetix process``: derive ``out`` from the present, not-bad clips of ``root``."""
    settings = process_settings(config)
    started = time.monotonic()
    with (
        stop_on_signals(note=WORKERS_NOTE, level=logging.INFO) as stop,
        DerivedDataset(Path(root), Path(out), kind="videos", settings=settings) as ds,
    ):
        report = DerivedReport(ds.source, ds.out)
        work = ds.plan(
            report, relpath=lambda rel: rel, problem=output_problem,
            retry_failed=config.retry_failed,
        )  # fmt: skip
        threads = config.threads or threads_per_job(config.workers)
        tasks = [
            TranscodeTask(
                w.row.release, w.row.split, w.row.key, w.relpath, str(w.src), str(w.dest),
                str(ds.partial / f"{w.row.split}.{w.row.key}.mp4"), config, threads,
            )
            for w in work
        ]  # fmt: skip
        executor = ds.open_executor(config.executor, config.workers, needed=bool(tasks))
        try:
            ds.run(tasks, transcode_clip, executor, report, emit, stop)
        finally:
            executor.close()
    report.seconds = time.monotonic() - started
    return report
