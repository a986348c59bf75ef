"""Pool workers die with their parent: parent-death signal, a parent-alive watch, no SIGINT."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_INTERVAL = 0.5  # seconds between parent-alive checks


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that forked it exits.

    Returns False where that is not available (other systems); the parent watch still works.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


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
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if forked_by_main_thread:
        set_parent_death_signal()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="kinetix-parent-watch", daemon=True
    ).start()
