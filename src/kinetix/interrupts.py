"""Stopping a run on Ctrl-C or SIGTERM: a stop token the job loops and workers watch.

While a job loop runs tasks (``StopToken.running``), SIGINT/SIGTERM do not raise in the middle
of recording a result: they set the token, which aborts transfers in flight (their partial
files stay for resume), stops new tasks from starting, and lets the loop record the results of
tasks that already finished or committed. The loop then raises ``Interrupted``. A second signal
stops at once. Outside a job loop a signal interrupts as usual (nothing is in flight there).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after recording everything that was finished."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopToken:
    """Set once, by a signal or a fatal failure (a full disk); callbacks run when it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._running = 0
        self.signum: int | None = None  # the signal that set it, if one did

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int | None = None) -> None:
        """Stop: run every registered callback (once). Safe from any thread."""
        with self._lock:
            if self._event.is_set():
                return
            self.signum = signum
            self._event.set()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing abort must not keep the others running
                log.debug("stop callback %r failed", callback, exc_info=True)

    @contextlib.contextmanager
    def on_stop(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` when the token is set during the ``with`` block (or at once)."""
        with self._lock:
            ident = self._next
            self._next += 1
            self._callbacks[ident] = callback
            already = self._event.is_set()
        try:
            if already:
                callback()
            yield
        finally:
            with self._lock:
                self._callbacks.pop(ident, None)

    def guard(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` until the token is set: an executor then submits nothing new."""
        for item in items:
            if self._event.is_set():
                return
            yield item

    @contextlib.contextmanager
    def running(self) -> Iterator[StopToken]:
        """Mark a job loop: signals inside it set the token instead of raising."""
        with self._lock:
            self._running += 1
        try:
            yield self
        finally:
            with self._lock:
                self._running -= 1

    @property
    def deferring(self) -> bool:
        with self._lock:
            return self._running > 0

    def raise_if_signalled(self) -> None:
        """After a job loop drained: raise ``Interrupted`` if a signal stopped it."""
        if self.signum is not None:
            raise Interrupted(self.signum)


TRANSFERS_NOTE = (
    "finished clips are recorded, transfers in flight keep their partial files for the next run "
    "(send it again to stop at once)"
)
# verify, process, frames: the tasks in flight are abandoned at once, so the stop is quick and
# the one line the CLI prints at the end says it all (the acknowledgement is for -v).
WORKERS_NOTE = "finished clips are recorded; the clips in progress are redone by the next run"


@contextlib.contextmanager
def stop_on_signals(
    token: StopToken | None = None, *, note: str = TRANSFERS_NOTE, level: int = logging.WARNING
) -> Iterator[StopToken]:
    """Route SIGINT and SIGTERM to ``token`` for the ``with`` block (main thread only).

    The first signal inside a job loop is acknowledged with ``note`` at ``level``. Elsewhere
    (a library call from a worker thread) the token still works, set by hand.
    """
    token = token or StopToken()
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def handle(signum: int, frame: object) -> None:
        if (token.is_set() and token.signum is not None) or not token.deferring:
            raise Interrupted(signum)  # a second signal, or nothing in flight: stop at once
        log.log(level, "%s: stopping; %s", signal.Signals(signum).name, note)
        # Aborting transfers takes locks the interrupted code may hold: not in the handler.
        threading.Thread(target=token.set, args=(signum,), name="kinetix-stop").start()

    previous = {sig: signal.signal(sig, handle) for sig in _SIGNALS}
    try:
        yield token
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
