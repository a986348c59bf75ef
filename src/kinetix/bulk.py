"""Work on a whole split at once (100k+ rows): Python's cyclic garbage collector kept off it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_kept = threading.local()  # .on: inside a rows_kept scope that may freeze


@contextmanager
def paused_gc(*, keep: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector while rows are read, registered or planned.

    That work makes no reference cycles, but every few hundred new tuples trigger a collection
    that walks every row made so far: a third of a 650k-row catalog's load time, and ~30% of a
    fresh 545k-row download's planning. Nested pauses are fine; the outermost one re-enables.

    ``keep`` (inside ``rows_kept``; ignored elsewhere): what the block made lives on (a run's
    work rows), so it is frozen (``gc.freeze``) as the block ends; else the first collections
    after the pause walk all of it, about three times (~0.7 CPU-s at 545k rows), and each full
    collection of the run walks it again. Acyclic rows are still freed by their reference
    counts when dropped.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if keep and getattr(_kept, "on", False):
            gc.freeze()
        if was_enabled:
            gc.enable()


@contextmanager
def rows_kept() -> Iterator[None]:
    """The scope of ``paused_gc(keep=True)``: what it froze goes back to the collector after.

    Nothing is frozen when something had frozen objects before (a pre-fork server's own), or
    in a nested scope (the outermost one unfreezes).
    """
    outer = getattr(_kept, "on", None)
    mine = outer is None and gc.get_freeze_count() == 0
    if outer is None:
        _kept.on = mine
    try:
        yield
    finally:
        if outer is None:
            del _kept.on
            if mine:
                gc.unfreeze()
