"""Test-only crash points: ``KINETIX_CRASH_AT=PHASE[:N]`` makes a run kill -9 itself there.

The fault tests (tests/test_crash_points.py) and the soak name a phase of a stage
(``download.transfer``, ``frames.task``, ...; ``PHASES`` lists them) and the run SIGKILLs its
main process the N-th time (default 1st) a process of the run reaches it: a kill at exactly that
moment, with no sleep to guess. A worker process (the pool's, or a Dask worker started by the
run) kills the main process, not itself, so its own death is the parent-death path a real
``kill -9`` of kinetix takes. Unset (always, outside tests), ``crash_point`` is one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "KINETIX_CRASH_AT"
PID_ENV = "KINETIX_CRASH_PID"  # the run's main process, for its workers (set by ``arm``)

PHASES = {
    "download.transfer": "a shard's bytes are being written to its .part file",
    "download.extract": "a clip of a shard is placed at its final path, not yet recorded",
    "download.replacement": "the K400 replacement set was decided on, before it is fetched",
    "download.commit": "a shard's result is half-way into its one transaction (none of it stays)",
    "verify.task": "a worker is checking a clip",
    "verify.record": "a verdict is recorded, not yet written to the manifest",
    "verify.quarantine": "a bad clip is recorded as quarantined, not yet moved aside",
    "process.task": "a worker's ffmpeg wrote its temporary clip, not yet renamed into place",
    "process.record": "a processed clip is recorded, not yet written to the manifest",
    "frames.task": "a worker's frames are in its temporary folder, not yet renamed into place",
    "frames.placed": "a frame folder is in place, its result not yet back in the parent",
    "frames.record": "a frame folder is recorded, not yet written to the manifest",
}

_hits: dict[str, int] = {}


def arm() -> None:
    """In the run's main process: name it for the workers it starts (no-op when unset)."""
    if os.environ.get(ENV) and PID_ENV not in os.environ:
        os.environ[PID_ENV] = str(os.getpid())


def crash_point(phase: str) -> None:
    """SIGKILL the run's main process if ``KINETIX_CRASH_AT`` names this (N-th) hit of ``phase``."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != phase:
        return
    _hits[phase] = hits = _hits.get(phase, 0) + 1
    if hits != int(nth or 1):
        return
    target = int(os.environ.get(PID_ENV) or os.getpid())
    try:
        os.kill(target, signal.SIGKILL)
    except ProcessLookupError:  # the run is gone already
        pass
    if target != os.getpid():
        return  # a worker: the parent-death signal and watch end it, as after a real kill
    signal.pause()  # pragma: no cover - the kill above does not return
