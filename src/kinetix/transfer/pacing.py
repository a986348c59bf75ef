"""How fast and how often to ask: the one token bucket and the one backoff policy.

``TokenBucket`` meters requests (the YouTube gate, ``sources/ratelimit.py``) and bytes (the
synthetic mirror's bandwidth caps, ``synthetic/server.py``); ``BackoffPolicy`` spaces the tries
of an HTTP transfer (``transfer/retry.py``) and of a YouTube clip. Time comes from a ``Clock``
so tests drive it by hand.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Clock:
    """Wall time; tests pass a fake whose ``sleep`` just moves ``monotonic`` on."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class _CallableClock(Clock):
    """A ``Clock`` over a bare ``() -> seconds`` function (what the mirror's tests hand in)."""

    def __init__(self, now: Callable[[], float]):
        self._now = now

    def monotonic(self) -> float:
        return self._now()


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``take`` says how long to wait.

    A token is whatever the caller meters: one request, or one byte of a body.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Clock | Callable[[], float] | None = None,
        unit: str = "requests",
    ):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 {unit}/s, got {rate}")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        if clock is None:
            clock = Clock()
        elif not isinstance(clock, Clock):
            clock = _CallableClock(clock)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = self._clock.monotonic()
        self._lock = threading.Lock()

    def take(self, count: float = 1.0) -> float:
        """Reserve ``count`` tokens; return the seconds the caller must wait before using them.

        Reserving ahead (the balance may go negative) queues concurrent callers fairly:
        each waits for its own slot instead of all of them polling for the next one.
        """
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= count
            return max(0.0, -self._tokens / self.rate)

    # The mirror's callers reserve byte counts; the name says what they do with the answer.
    reserve = take

    def acquire(self) -> None:
        self._clock.sleep(self.take())

    def wait_time(self) -> float:
        """Seconds until a token is free, reserving nothing (0: ``take`` would not wait)."""
        with self._lock:
            now = self._clock.monotonic()
            tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            missing = 1.0 - tokens
            return 0.0 if missing < 1e-9 else missing / self.rate  # no wait for rounding dust


@dataclass(frozen=True)
class BackoffPolicy:
    """Waits between the tries of one task: exponential with full jitter, or Retry-After."""

    base: float = 2.0
    throttled_base: float = 15.0  # 429s and bot checks need far longer than a dropped connection
    cap: float = 300.0

    def delay(
        self,
        attempt: int,
        *,
        throttled: bool = False,
        retry_after: float | None = None,
        rand: Callable[[float, float], float] | None = None,
    ) -> float:
        """Seconds to wait after try ``attempt`` (counting from 0) failed."""
        if retry_after is not None:
            # The server said how long; a day-long quota reset would only stall the run, so
            # it is capped and the next answer decides.
            return min(max(retry_after, 0.0), self.cap)
        base = self.throttled_base if throttled else self.base
        return (rand or random.uniform)(0.0, min(self.cap, base * 2.0**attempt))
