"""When to retry a failed transfer, and how long to wait first (jittered backoff, Retry-After).

``Backoff.run`` is the one retry loop of every HTTP request in ``kinetix.transfer``: the
probe, small-file fetches (``transfer/http.py``) and each piece or stream of a shard
(``transfer/shard.py``). Its waits are ``transfer/pacing.py``'s ``BackoffPolicy``, the policy
the YouTube source uses too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from kinetix.config import TransferConfig
from kinetix.errors import ConnectError, ErrorCode, HTTPStatusError, StallError, TransferError
from kinetix.transfer.pacing import BackoffPolicy

T = TypeVar("T")

log = logging.getLogger(__name__)

# Statuses worth asking again: the server or something in front of it is busy or broken.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# A host that cannot be reached (no DNS, refused) or a stalled connection is tried twice more,
# not ``retries`` times: neither heals in the minutes the full budget would take.
CONNECT_RETRIES = 2
STALL_RETRIES = 2
_CONNECT_DELAY_CAP = 1.0
OFFLINE_HINT = (
    "check the network and the URL; --mirror URL fetches from a reachable mirror, --offline "
    "uses cached annotations, and 'kinetix demo' runs the whole pipeline offline"
)


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


def retry_limit(exc: BaseException, retries: int) -> int:
    """How many retries ``exc``'s kind gets out of the configured ``retries``."""
    if isinstance(exc, ConnectError):
        return min(retries, CONNECT_RETRIES)
    if isinstance(exc, StallError):
        return min(retries, STALL_RETRIES)
    return retries


def gave_up(exc: TransferError, url: str, attempts: int, kept: str) -> TransferError:
    """The final error after retries: what happened, how often, what was kept, what to do."""
    # Every message names the URL already.
    tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
    message = f"{exc} (gave up after {tries}); {kept}"
    if isinstance(exc, ConnectError):
        return ConnectError(f"{message}; {OFFLINE_HINT}", url=url)
    if isinstance(exc, StallError):
        return StallError(message, url=url)
    return TransferError(message, url=url, code=exc.code)


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
        # A transfer has no "throttled" tier: a 429 waits what Retry-After says, else the base.
        self.policy = BackoffPolicy(
            base=config.backoff_base, throttled_base=config.backoff_base, cap=config.backoff_max
        )
        self.retries = config.retries
        self.cancel = cancel

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        return self.policy.delay(attempt, retry_after=retry_after)

    def run(
        self,
        attempt: Callable[[], T],
        *,
        url: str,
        kept: str,
        note: Callable[[], str] | None = None,
    ) -> T:
        """Call ``attempt`` until it returns; after each ``TransferError`` wait or give up.

        Permanent failures and exhausted retries raise as ``retry`` says; anything that is not
        a ``TransferError`` (a halt, a bug) leaves at once. ``note`` is asked after a failure
        for detail the message lacks (the byte range that attempt asked for).
        """
        tries = 0
        while True:
            try:
                return attempt()
            except TransferError as exc:
                self.retry(tries, exc, url=url, kept=kept, note=note() if note else "")
                tries += 1

    def retry(
        self, attempt: int, exc: TransferError, *, url: str, kept: str, note: str = ""
    ) -> None:
        """After failed attempt ``attempt`` (from 0): sleep before the next, or raise the end.

        Permanent failures re-raise ``exc``; exhausted retries raise ``gave_up``. ``note`` adds
        detail the message lacks (a byte range).
        """
        if not is_retryable(exc) or (self.cancel is not None and self.cancel.is_set()):
            raise exc  # permanent, or the download is being stopped: no further attempt
        limit = retry_limit(exc, self.retries)
        if attempt >= limit:
            raise gave_up(exc, url, attempt + 1, kept) from exc
        self.wait(attempt, exc, note, limit=limit)

    def wait(self, attempt: int, exc: BaseException, note: str = "", *, limit: int = 0) -> None:
        """Log the failure and sleep before the next attempt."""
        retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
        seconds = self.delay(attempt, retry_after)
        if isinstance(exc, ConnectError):
            seconds = min(seconds, _CONNECT_DELAY_CAP)
        detail = f" [{note}]" if note else ""
        of = f" of {limit}" if limit else ""
        if isinstance(exc, StallError):
            # Visible at the default level (and with --no-progress): a stall costs real time.
            log.warning(
                "%s%s; dropped the connection, retry %d%s in %.1fs",
                exc, detail, attempt + 1, of, seconds,
            )  # fmt: skip
        else:
            log.info("%s%s; retry %d%s in %.1fs", exc, detail, attempt + 1, of, seconds)
        sleep(seconds, self.cancel)
