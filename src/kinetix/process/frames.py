"""``kinetix frames``: raw-frame folders (``img_00001.jpg`` ...) for mmaction2 and PaddleVideo."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kinetix.config import FramesConfig, JpegEncoder
from kinetix.crashpoints import crash_point
from kinetix.errors import DiskSpaceError, ErrorCode, FFmpegError, MediaError
from kinetix.executors import Executor, TaskKind, run_tasks
from kinetix.interrupts import WORKERS_NOTE, StopToken, stop_on_signals
from kinetix.process.audio import WAV_NAME, audio_output_args, extract_audio
from kinetix.process.derived import (
    DerivedDataset,
    DerivedReport,
    DoneRow,
    SourceClip,
    failed_update,
)
from kinetix.process.ffmpeg import error_code, error_tail, file_arg, run_ffmpeg, threads_per_job
from kinetix.process.filters import video_filters
from kinetix.process.jpeg import jpeg_quality, resolve_encoder, write_frames
from kinetix.process.probe import probe_video
from kinetix.process.verify import frame_files, inspect_frames
from kinetix.process.writer import ManifestWriter
from kinetix.store.manifest import ClipState, ClipUpdate

log = logging.getLogger(__name__)

FRAME_PATTERN = "img_%05d.jpg"  # 1-based, as mmaction2's rawframe datasets and PaddleVideo expect


def frame_args(
    src: str, folder: str, config: FramesConfig, threads: int, *, audio: bool
) -> list[str]:
    """ffmpeg arguments writing every (or ``config.fps``) frame of ``src`` into ``folder``."""
    t = str(threads)
    pattern = folder.replace("%", "%%") + "/" + FRAME_PATTERN  # a literal % in the path
    args = ["-filter_threads", t, "-threads", t, "-i", file_arg(src), "-map", "0:v:0"]
    vf = video_filters(fps=config.fps, short_side=config.short_side, upscale=config.upscale)
    if vf:
        args += ["-vf", vf]
    # ffmpeg's own defaults (optimal Huffman tables): the JPEGs `ffmpeg -q:v N` writes
    args += ["-q:v", str(config.quality), "-threads", t]
    # passthrough: one image per decoded (or fps-filtered) frame, never duplicated or dropped
    args += ["-fps_mode", "passthrough", "-start_number", "1", "-f", "image2", "-y"]
    args += [file_arg(pattern)]
    if audio and config.audio is not None:
        args += audio_output_args(Path(folder) / WAV_NAME, config.audio)
    return args


def count_frames(folder: Path) -> tuple[int, int]:
    """(number of ``img_*.jpg`` files, bytes of everything) in a clip folder."""
    names, size = frame_files(folder)
    return len(names), size


@dataclass(frozen=True)
class FramesTask:
    """One clip to extract; ``relpath`` is the frame folder relative to the frames root."""

    release: str
    split: str
    key: str
    relpath: str
    src: str
    dest: str
    tmp: str
    config: FramesConfig
    threads: int
    expected_frames: int | None  # verified frame count when every frame is kept
    encoder: JpegEncoder = JpegEncoder.FFMPEG  # resolved: ffmpeg or turbo, never auto


def extract_frames(task: FramesTask) -> ClipUpdate:
    """Worker: extract into a temporary folder, check it is whole, rename it into place."""
    tmp = Path(task.tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        info = probe_video(task.src)  # an unreadable source says so here, not in ffmpeg's words
        tmp.mkdir(parents=True)
        audio = info.has_audio and task.config.audio is not None
        written = None
        if task.encoder is JpegEncoder.TURBO:  # None: a rotated clip, left to ffmpeg's autorotation
            written = write_frames(task.src, tmp, task.config, task.threads, FRAME_PATTERN)
        if written is None:
            who = "ffmpeg wrote"
            run_ffmpeg(frame_args(task.src, str(tmp), task.config, task.threads, audio=audio))
        else:
            who = "PyAV decoded"
            if audio and task.config.audio is not None:
                extract_audio(task.src, tmp / WAV_NAME, task.config.audio)
        count, size = count_frames(tmp)
        if count == 0:
            return failed_update(task, ErrorCode.ZERO_FRAMES, f"{who} no frame")
        if task.expected_frames is not None and count < task.expected_frames - 1:
            return failed_update(
                task,
                ErrorCode.MISSING_FRAMES,
                f"{who} {count} frames, the clip has {task.expected_frames}",
            )
        if audio and not (tmp / WAV_NAME).is_file():
            return failed_update(task, ErrorCode.FFMPEG_FAILED, f"ffmpeg wrote no {WAV_NAME}")
        # verified by construction: every frame numbered in order, the ends decode, one size
        checked = inspect_frames(tmp, count)
        if checked["verify"] != "good":
            code = ErrorCode(checked["error_code"])
            return failed_update(task, code, f"{who} a bad folder: {checked['error_message']}")
        fps = task.config.fps or info.fps
        dest = Path(task.dest)
        if dest.exists():  # an incomplete folder from an earlier run: replaced whole
            shutil.rmtree(dest)
        crash_point("frames.task")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        crash_point("frames.placed")
    except FFmpegError as exc:
        return failed_update(task, error_code(exc), error_tail(exc))
    except MediaError as exc:
        return failed_update(task, exc.code, exc.reason)
    except OSError as exc:
        code = ErrorCode.NO_SPACE if exc.errno == errno.ENOSPC else ErrorCode.UNKNOWN
        return failed_update(task, code, f"{task.dest}: {exc.strerror or exc}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fields: dict[str, Any] = {
        **checked, "state": ClipState.PRESENT.value, "path": task.relpath, "num_frames": count,
        "bytes": size, "fps": round(fps, 4), "has_audio": int(audio), "origin": task.src,
        "source": "derived", "error_code": None, "error_message": None,
    }  # fmt: skip
    return ClipUpdate(task.release, task.split, task.key, fields, count_attempt=True)


def frame_relpath(video_relpath: str) -> str:
    """``{split}/{label_folder}/{key}.mp4`` -> ``{split}/{label_folder}/{key}``."""
    return str(PurePosixPath(video_relpath).with_suffix(""))


def folder_problem(row: DoneRow | None, folder: Path, src_mtime: float) -> str | None:
    """Why an earlier output folder cannot be kept (None: it is whole and current).

    A folder that is not whole is ``missing_frames``; one older than its clip is stale.
    """
    if row is None or row.state != ClipState.PRESENT.value:
        return "not extracted"
    try:
        count, _ = count_frames(folder)
        mtime = folder.stat().st_mtime
    except OSError:
        return "missing_frames: the folder is gone"
    if count != row.num_frames:
        return f"missing_frames: {count} of {row.num_frames} frames on disk"
    if row.has_audio and not (folder / WAV_NAME).is_file():
        return f"missing_frames: {WAV_NAME} is gone"
    if mtime < src_mtime:
        return "stale: the source clip is newer than its frames"
    return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def frames_settings(config: FramesConfig, encoder: JpegEncoder) -> dict[str, Any]:
    """What a frames root's folders are made with: a rerun into it must agree."""
    audio = config.audio
    # in ``settings``: the encoders quantise differently, so one root never mixes them
    settings: dict[str, Any] = {
        "fps": config.fps, "short_side": config.short_side, "upscale": config.upscale,
        "quality": config.quality, "encoder": encoder.value,
        "audio": None if audio is None else {"rate": audio.sample_rate, "channels": audio.channels},
    }  # fmt: skip
    if encoder is JpegEncoder.TURBO:  # what its quality means may change: a rerun must agree
        settings["libjpeg_quality"] = jpeg_quality(config.quality)
    return settings


def extract_dataset(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: FramesConfig,
    *,
    emit: Callable[[str], None] | None = None,
) -> DerivedReport:
    """Run ``kinetix frames``: a frame folder for every present, not-bad clip of ``root``."""
    encoder = resolve_encoder(config.encoder)
    settings = frames_settings(config, encoder)
    started = time.monotonic()
    with (
        stop_on_signals(note=WORKERS_NOTE, level=logging.INFO) as stop,
        DerivedDataset(Path(root), Path(out), kind="frames", settings=settings) as ds,
    ):
        report = DerivedReport(ds.source, ds.out)
        work = ds.plan(
            report, relpath=frame_relpath, problem=folder_problem,
            retry_failed=config.retry_failed,
        )  # fmt: skip
        threads = config.threads or threads_per_job(config.workers)
        tasks = [
            FramesTask(
                w.row.release, w.row.split, w.row.key, w.relpath, str(w.src), str(w.dest),
                str(ds.partial / f"{w.row.split}.{w.row.key}"), config, threads,
                _expected_frames(w.row, config), encoder,
            )
            for w in work
        ]  # fmt: skip
        executor = ds.open_executor(config.executor, config.workers, needed=bool(tasks))
        try:
            rest = _sample_space(ds, tasks, config, report, executor, stop)
            ds.run(rest, extract_frames, executor, report, emit, stop)
        finally:
            executor.close()
    report.seconds = time.monotonic() - started
    return report


def _expected_frames(row: SourceClip, config: FramesConfig) -> int | None:
    """The verified frame count a folder must reach when every frame is kept."""
    if config.fps is not None or row.verify != "good":
        return None
    return row.num_frames


def _sample_space(
    ds: DerivedDataset,
    tasks: list[FramesTask],
    config: FramesConfig,
    report: DerivedReport,
    executor: Executor,
    stop: StopToken,
) -> list[FramesTask]:
    """Extract the first few clips, and refuse the rest if they will not fit on the disk.

    Frames take 5-20x the space of the clip they come from, depending on resolution and
    quality, so the estimate comes from real output rather than a guess. The samples run
    in parallel like any other clips and are kept; clips that fail are recorded and do not
    count as samples.
    """
    sizes: list[int] = []
    taken = 0
    with ManifestWriter(ds.manifest) as writer, stop.running():
        while taken < len(tasks) and len(sizes) < config.sample_clips and not stop.is_set():
            batch = tasks[taken : taken + config.sample_clips - len(sizes)]
            taken += len(batch)
            relpaths = {(t.release, t.split, t.key): t.relpath for t in batch}

            def record(
                update: ClipUpdate, relpaths: dict[tuple[str, str, str], str] = relpaths
            ) -> None:
                if stop.is_set() and update.fields.get("state") != ClipState.PRESENT.value:
                    return  # a failure after the stop may be the stop's doing
                writer.add(update)
                crash_point("frames.record")
                relpath = relpaths[(update.release, update.split, update.key)]
                if report.record(update, relpath):
                    sizes.append(int(update.fields["bytes"]))
                elif update.fields["error_code"] == ErrorCode.NO_SPACE.value:
                    raise DiskSpaceError(
                        f"{ds.out} is full: no space left on device while extracting "
                        f"{relpath}; free some space or choose another --out"
                    )

            run_tasks(
                batch,
                extract_frames,
                executor,
                on_result=record,
                kind=TaskKind.CPU,
                stop=stop,
                abandon=True,
            )
    stop.raise_if_signalled()
    rest = tasks[taken:]
    if not rest or not sizes:
        return rest
    per_clip = sum(sizes) / len(sizes)
    need = per_clip * len(rest) * 1.1  # a margin: clips differ in length and resolution
    free = shutil.disk_usage(ds.out).free
    if need > free:
        raise DiskSpaceError(
            f"frames for {len(rest)} more clips need about {_size(need)} "
            f"({_size(per_clip)} per clip from {len(sizes)} sampled), but {ds.out} has "
            f"{_size(free)} free; free some space, use a smaller --short-side/--fps, "
            "or choose another --out"
        )
    return rest
