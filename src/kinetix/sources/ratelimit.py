"""Politeness towards one service: a shared request rate, Retry-After pauses and a circuit breaker.

Every worker of a process asks the same ``RequestGate`` before each request (``acquire``), or
one dispatcher asks it before handing each request to a worker anywhere (``reserve``: how a
Dask or SLURM run keeps one rate for the whole cluster). The gate holds a token bucket
(``rate`` requests per second), a pause that a server's ``Retry-After`` extends for everyone,
and a circuit breaker that stops all workers for a while when most recent answers were
throttling (HTTP 429, bot checks, dropped connections).
Time comes from a ``Clock`` so tests drive it by hand. The bucket, the clock and the backoff
policy are ``kinetix.transfer.pacing``'s, shared with HTTP transfers and the synthetic mirror.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from enum import Enum

from kinetix.transfer.pacing import BackoffPolicy, Clock, TokenBucket

log = logging.getLogger(__name__)

__all__ = [
    "BackoffPolicy",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "Outcome",
    "RequestGate",
    "TokenBucket",
    "shared_gate",
]


class Outcome(str, Enum):
    """What one request told us about the service's mood."""

    OK = "ok"  # an answer, even "this video is private": the service is talking to us
    THROTTLED = "throttled"  # 429, a bot check, a dropped connection: we may be too many


class BreakerState(str, Enum):
    CLOSED = "closed"  # requests flow
    OPEN = "open"  # everyone waits until the cool-down ends
    HALF_OPEN = "half_open"  # one probe request decides whether to close or open again


@dataclass(frozen=True)
class BreakerPolicy:
    """When the breaker trips and for how long it stays open."""

    window: int = 20  # the most recent outcomes looked at
    min_calls: int = 6  # fewer outcomes than this never trip it
    threshold: float = 0.5  # fraction of throttled outcomes that trips it
    cooldown: float = 60.0  # first pause, seconds
    max_cooldown: float = 900.0  # each failed probe doubles the pause, up to this


class CircuitBreaker:
    """Opens when the recent throttling rate spikes, so every worker stops instead of hammering.

    Every pause is a warning (every worker stops: the user must see why and for how long);
    the first one also says what helps.
    """

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        clock: Clock | None = None,
        advice: str = "",
    ):
        self.policy = policy or BreakerPolicy()
        self._clock = clock or Clock()
        self._advice = advice
        self._recent: deque[Outcome] = deque(maxlen=self.policy.window)
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._cooldown = self.policy.cooldown
        self._probing = False
        self._warned = False
        self._lock = threading.Lock()
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._refresh()
            return self._state

    def _refresh(self) -> None:
        if self._state is BreakerState.OPEN and self._clock.monotonic() >= self._open_until:
            self._state = BreakerState.HALF_OPEN
            self._probing = False

    def wait_time(self) -> float:
        """Seconds the caller must wait before it may send a request (0: go now).

        In the half-open state the first caller becomes the probe and goes; the others wait
        until the probe's outcome is recorded.
        """
        with self._lock:
            self._refresh()
            if self._state is BreakerState.OPEN:
                return self._open_until - self._clock.monotonic()
            if self._state is BreakerState.HALF_OPEN:
                if self._probing:
                    return min(1.0, self._cooldown)  # look again soon
                self._probing = True
            return 0.0

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self._refresh()
            if self._state is BreakerState.HALF_OPEN:
                self._probing = False
                if outcome is Outcome.OK:
                    self._state = BreakerState.CLOSED
                    self._cooldown = self.policy.cooldown
                    self._recent.clear()
                else:
                    self._cooldown = min(self._cooldown * 2, self.policy.max_cooldown)
                    self._open("the first request after the pause was refused again")
                return
            self._recent.append(outcome)
            if self._state is BreakerState.OPEN:
                return  # outcomes of requests sent before the trip
            seen = len(self._recent)
            throttled = sum(o is Outcome.THROTTLED for o in self._recent)
            if seen >= self.policy.min_calls and throttled >= self.policy.threshold * seen:
                self._open(f"{throttled} of the last {seen} requests were refused")

    def _open(self, why: str) -> None:
        self._state = BreakerState.OPEN
        self._open_until = self._clock.monotonic() + self._cooldown
        self.trips += 1
        message = (
            f"the service is throttling this machine: {why} (HTTP 429, bot checks or dropped "
            f"connections); pausing every worker for {self._cooldown:.0f}s"
        )
        if self._advice and not self._warned:
            message += f". {self._advice}"
        self._warned = True
        log.warning("%s (pause %d)", message, self.trips)


class RequestGate:
    """The one place every worker of a process waits before talking to the service."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock | None = None,
        breaker: BreakerPolicy | None = None,
        backoff: BackoffPolicy | None = None,
        advice: str = "",
    ):
        self.clock = clock or Clock()
        self.bucket = TokenBucket(rate, clock=self.clock)
        self.breaker = CircuitBreaker(breaker, clock=self.clock, advice=advice)
        self.backoff = backoff or BackoffPolicy()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def pause(self, seconds: float) -> None:
        """Hold every worker for ``seconds``: a server's Retry-After applies to the whole client."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    def acquire(self) -> None:
        """Block until this worker may send its next request."""
        while True:
            with self._lock:
                paused = self._paused_until - self.clock.monotonic()
            if paused > 0:
                self.clock.sleep(paused)
                continue
            wait = self.breaker.wait_time()
            if wait > 0:
                self.clock.sleep(wait)
                continue
            break
        self.bucket.acquire()

    def reserve(self) -> float:
        """Never blocks: 0.0 means send now (the request is counted), more is the seconds to
        wait before asking again. For one dispatcher that meters a whole cluster and must keep
        collecting results (a half-open breaker waits for its probe's answer) while it waits."""
        with self._lock:
            paused = self._paused_until - self.clock.monotonic()
        if paused > 0:
            return paused
        wait = self.bucket.wait_time()
        if wait > 0:
            return wait
        wait = self.breaker.wait_time()  # last: in the half-open state it claims the probe
        if wait > 0:
            return wait
        self.bucket.take()  # the token found free above (one dispatcher: nobody took it since)
        return 0.0

    def record(self, outcome: Outcome) -> None:
        self.breaker.record(outcome)

    def retry_delay(self, attempt: int, *, throttled: bool, retry_after: float | None) -> float:
        """Seconds to wait before the next try of a task whose try ``attempt`` failed."""
        return self.backoff.delay(attempt, throttled=throttled, retry_after=retry_after)

    def wait(self, seconds: float, *, everyone: bool = False) -> None:
        """Sleep before a retry; ``everyone`` (a server's Retry-After) holds every worker."""
        if everyone:
            self.pause(seconds)
        self.clock.sleep(seconds)


_GATES: dict[tuple[str, float], RequestGate] = {}
_GATES_LOCK = threading.Lock()


def shared_gate(service: str, rate: float, *, advice: str = "") -> RequestGate:
    """The process-wide gate for ``service`` at ``rate``; created on first use.

    Thread workers share it directly; each worker process of a process or Dask pool would get
    its own, so a cluster is metered from the one process that hands out the requests
    (``reserve``), never from the workers.
    """
    key = (service, float(rate))
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = RequestGate(rate, advice=advice)
        return gate
