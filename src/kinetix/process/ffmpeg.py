"""Find the ffmpeg binary kinetix uses and run it: argv list, logged, raising with stderr tail."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from kinetix.errors import ErrorCode, FFmpegError, KinetixError
from kinetix.executors.orphans import tool_spawn_options
from kinetix.executors.preflight import Tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FFmpegBinary:
    path: str
    origin: str  # "KINETIX_FFMPEG" | "system" | "imageio-ffmpeg"
    version: str


@functools.lru_cache(maxsize=1)
def find_ffmpeg() -> FFmpegBinary:
    """``$KINETIX_FFMPEG``, else the system ``ffmpeg``, else the imageio-ffmpeg wheel's binary."""
    env = os.environ.get("KINETIX_FFMPEG")
    if env:
        return FFmpegBinary(env, "KINETIX_FFMPEG", _version(env))
    system = shutil.which("ffmpeg")
    if system:
        return FFmpegBinary(system, "system", _version(system))
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a core dependency
        imageio_ffmpeg = None
    if imageio_ffmpeg is not None:
        path = imageio_ffmpeg.get_ffmpeg_exe()
        return FFmpegBinary(path, "imageio-ffmpeg", _version(path))
    raise KinetixError(
        "no ffmpeg found: install it (apt-get install ffmpeg) or pip install imageio-ffmpeg, "
        "or point KINETIX_FFMPEG at a binary"
    )


def ffmpeg_version() -> str | None:
    """The version of the ffmpeg ``find_ffmpeg`` picks here (a cluster worker's preflight)."""
    return find_ffmpeg().version


FFMPEG_TOOL = Tool("ffmpeg", ffmpeg_version)


def _version(path: str) -> str:
    try:
        out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=30).stdout
    except OSError as exc:
        raise KinetixError(f"ffmpeg at {path} cannot run: {exc}") from exc
    first = out.splitlines()[0] if out else ""
    parts = first.split()
    return parts[2] if len(parts) > 2 else first


def run_ffmpeg(args: list[str], *, timeout: float | None = 600, quiet: bool = True) -> str:
    """Run ``ffmpeg ARGS``; returns stderr, raises ``FFmpegError`` with its tail on failure.

    ``args`` is an argv list (never a shell string), so ids starting with ``-`` and labels
    with quotes are passed as-is; callers put paths after an explicit option or ``file:``.
    """
    argv = [find_ffmpeg().path, "-nostdin", "-hide_banner"]
    if quiet:
        argv += ["-loglevel", "error"]
    argv += args
    log.debug("ffmpeg %s", " ".join(args))
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, **tool_spawn_options())
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(argv, -1, f"timed out after {timeout}s") from exc
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise FFmpegError(argv, proc.returncode, stderr[-2000:])
    return stderr


def file_arg(path: str | os.PathLike[str]) -> str:
    """A path as an ffmpeg argument: ``file:`` so names like ``-x.mp4`` or ``a:b`` stay paths."""
    return "file:" + os.fspath(path)


def threads_per_job(workers: int | None) -> int:
    """ffmpeg threads for each of ``workers`` concurrent jobs, so together they fill the cores.

    ``None`` means one worker per core, ``0`` one job at a time (inline). One thread per job
    when there are as many jobs as cores: many single-threaded encodes scale better than a
    few multi-threaded ones on small (Kinetics-sized) frames.
    """
    cores = os.cpu_count() or 1
    parallel = cores if workers is None else max(workers, 1)
    return max(1, cores // parallel)


def error_code(exc: FFmpegError) -> ErrorCode:
    """The stable reason for a failed run: a full disk is the target's fault, not the clip's."""
    if "no space left on device" in exc.stderr_tail.lower():
        return ErrorCode.NO_SPACE
    return ErrorCode.FFMPEG_FAILED


def error_tail(exc: FFmpegError, lines: int = 3) -> str:
    """The last few lines ffmpeg printed, one line, for the manifest's ``error_message``."""
    tail = [line.strip() for line in exc.stderr_tail.strip().splitlines() if line.strip()]
    text = " | ".join(tail[-lines:]) or f"ffmpeg exited with {exc.returncode}"
    return text[-500:]
