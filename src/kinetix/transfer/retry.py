"""When to retry a failed transfer, and how long to wait first (jittered backoff, Retry-After)."""

from __future__ import annotations

import logging
import random
import threading
import time
from email.utils import parsedate_to_datetime

from kinetix.config import TransferConfig
from kinetix.errors import ErrorCode, HTTPStatusError, TransferError

log = logging.getLogger(__name__)

# Statuses worth asking again: the server or something in front of it is busy or broken.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def sleep(seconds: float, cancel: threading.Event | None = None) -> None:
    """Wait before a retry, returning early when ``cancel`` is set.

    Every retry wait in ``kinetix.transfer`` goes through this one function, looked up at
    call time, so tests patch ``kinetix.transfer.retry.sleep`` instead of ``time.sleep``.
    """
    if cancel is None:
        time.sleep(seconds)
    else:
        cancel.wait(seconds)


def is_retryable(exc: BaseException) -> bool:
    """Transient failures (5xx, 429, resets, timeouts, short bodies) are worth another try."""
    if isinstance(exc, HTTPStatusError):
        return exc.status in _RETRY_STATUSES
    if isinstance(exc, TransferError):
        return exc.code in (ErrorCode.NETWORK, ErrorCode.TRUNCATED)
    return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Backoff:
    """Delays between attempts: capped exponential with full jitter, or the server's Retry-After."""

    def __init__(self, config: TransferConfig, cancel: threading.Event | None = None):
        self.base = config.backoff_base
        self.cap = config.backoff_max
        self.cancel = cancel

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            # The server said how long; honour it, but a day-long quota reset would only
            # stall the run, so it is capped like any other wait and the next answer decides.
            return min(retry_after, self.cap)
        return random.uniform(0.0, min(self.cap, self.base * 2.0**attempt))

    def wait(self, attempt: int, exc: BaseException, what: str) -> None:
        """Log the failure and sleep before the next attempt."""
        retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
        seconds = self.delay(attempt, retry_after)
        log.info("%s: %s; retry %d in %.1fs", what, exc, attempt + 1, seconds)
        sleep(seconds, self.cancel)
