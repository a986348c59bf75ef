"""Workers and their tools die with their parent: parent-death signal, a parent-alive watch,
and tools (ffmpeg, the ffmpeg yt-dlp starts) in a process group of their own."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_INTERVAL = 0.5  # seconds between parent-alive checks


@functools.lru_cache(maxsize=1)
def _prctl() -> Any:
    """libc's ``prctl``, looked up once (in the parent: a forked child must not search)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # the C library python itself links
    except (OSError, AttributeError):
        return None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that forked it exits.

    Returns False where that is not available (other systems); the parent watch still works.
    """
    prctl = _prctl()
    if prctl is None:
        return False
    return int(prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0


def die_with_parent() -> None:
    """``preexec_fn`` for a tool a worker runs (ffmpeg): killed with the thread that started it.

    A worker killed with ``kill -9`` (or by the OOM killer, or a pre-empted job) used to leave
    its ffmpeg running on, writing frames into a folder the task's retry elsewhere was
    rewriting. The thread waits for the tool, so only the worker's death ends it early.
    """
    set_parent_death_signal()


def tool_preexec() -> Callable[[], None] | None:
    """``die_with_parent`` where Linux offers it (libc looked up now, before any fork)."""
    return die_with_parent if _prctl() is not None else None


def tool_spawn_options() -> dict[str, Any]:
    """``subprocess`` keywords for every tool kinetix (or yt-dlp for it) starts.

    Its own process group: Ctrl-C at a terminal signals the whole foreground group, and an
    ffmpeg that got it quit half-way with an error, which its worker then reported as a failed
    clip before the parent could stop the run; the parent alone decides when a tool stops.
    ``die_with_parent``: a tool never outlives the worker (or thread) that started it.
    """
    options: dict[str, Any] = {}
    if os.name == "posix":
        options["process_group"] = 0
    preexec = tool_preexec()
    if preexec is not None:
        options["preexec_fn"] = preexec
    return options


def guard_ytdlp_tools() -> None:
    """Give the processes yt-dlp starts (its ffmpeg downloader) ``tool_spawn_options``.

    yt-dlp runs ffmpeg through its own ``Popen``: a ``kill -9`` of kinetix used to leave those
    fetching on until their section ended. Wrapped once per process; options yt-dlp passes
    itself win.
    """
    from yt_dlp.utils import Popen

    if getattr(Popen, "_kinetix_guarded", False):
        return
    original = Popen.__init__

    def __init__(self: Any, args: Any, *remaining: Any, **kwargs: Any) -> None:
        for name, value in tool_spawn_options().items():
            kwargs.setdefault(name, value)
        original(self, args, *remaining, **kwargs)

    Popen.__init__ = __init__  # type: ignore[method-assign]
    Popen._kinetix_guarded = True


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # orphaned: nobody will read our results, stop writing at once
        threading.Event().wait(_WATCH_INTERVAL)


def init_pool_worker(parent: int, forked_by_main_thread: bool) -> None:
    """``ProcessPoolExecutor`` initializer: a worker never outlives the kinetix process.

    After ``kill -9`` of the parent, forked workers used to keep writing, then sleep forever
    (holding the root's lock through the inherited descriptor, see ``store.lock``). Now the
    kernel kills them (parent-death signal; only when the main thread forked them, since the
    signal follows the forking *thread*), and a watch thread exits them within half a second
    wherever that is unavailable. Ctrl-C is the parent's to handle: it stops the pool itself.
    SIGTERM ends a worker at once, whatever handler the parent had when it forked (its stop
    token's, which a worker's copy of would only note): the pool terminates its workers so.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if forked_by_main_thread:
        set_parent_death_signal()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="kinetix-parent-watch", daemon=True
    ).start()
