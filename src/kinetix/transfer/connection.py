"""HTTP connections for transfers: keep-alive pools, proxies from the environment, error mapping."""

from __future__ import annotations

import ipaddress
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from kinetix.config import TransferConfig
from kinetix.errors import ConnectError, ErrorCode, HTTPStatusError, StallError, TransferError
from kinetix.transfer.retry import parse_retry_after

log = logging.getLogger(__name__)

# Follow redirects (S3 and CDNs use them) but never retry inside urllib3: kinetix retries
# itself, with its own backoff, and counts every attempt.
_REDIRECTS_ONLY = urllib3.Retry(total=None, connect=0, read=0, redirect=5, status=0, other=0)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``) names for ``url``.

    Loopback hosts never go through a proxy: a local mirror must work on a proxied machine.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _is_loopback(host):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.netloc):
        return proxy
    return None


def _host_port(exc: BaseException, url: str) -> str:
    """``host:port`` of the connection that failed (the proxy's, when going through one)."""
    conn = getattr(exc, "conn", None)
    if conn is not None and getattr(conn, "host", None):
        return f"{conn.host}:{conn.port}"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def network_error(exc: BaseException, what: str, url: str, config: TransferConfig) -> TransferError:
    """The ``TransferError`` for a urllib3/socket failure of ``what`` (``"GET URL"``).

    urllib3 2.x makes ``NameResolutionError`` and ``NewConnectionError`` subclasses of
    ``ConnectTimeoutError``, so they are told apart here before any timeout branch: a host that
    cannot be resolved or refuses the connection is a ``ConnectError`` (retried only briefly),
    a silent connection a ``StallError``.
    """
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, NameResolutionError):
        host = getattr(exc, "_host", None) or urlsplit(url).hostname
        return ConnectError(f"{what}: cannot resolve host {host} (no DNS answer)", url=url)
    if isinstance(exc, NewConnectionError):
        where = _host_port(exc, url)
        text = str(exc).lower()
        if isinstance(exc.__context__, ConnectionRefusedError) or "refused" in text:
            return ConnectError(f"{what}: connection refused by {where}", url=url)
        reason = str(exc).split(": ", 1)[-1].removeprefix("Failed to establish a new connection: ")
        return ConnectError(f"{what}: cannot connect to {where} ({reason})", url=url)
    if isinstance(exc, ConnectTimeoutError):
        where, seconds = _host_port(exc, url), connect_timeout(config)
        return ConnectError(
            f"{what}: no answer from {where} within {seconds:g}s (connect timed out)", url=url
        )
    if isinstance(exc, (Urllib3Timeout, TimeoutError)):
        return StallError(f"{what}: stalled: no data for {config.timeout:g}s", url=url)
    return TransferError(f"{what}: {describe_network_error(exc)}", url=url, code=ErrorCode.NETWORK)


def describe_network_error(exc: BaseException) -> str:
    """A short, human sentence for a urllib3/socket failure that is not a connect or a stall."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    text = str(exc.args[-1] if exc.args else exc)
    if "IncompleteRead" in text or "InvalidChunkLength" in text:
        return f"connection closed before the body ended ({text})"
    if isinstance(exc, ConnectionError) or "reset" in text.lower() or "aborted" in text.lower():
        return f"connection reset ({text})"
    return f"{type(exc).__name__}: {text}"


def connect_timeout(config: TransferConfig) -> float:
    """Seconds to wait for a TCP (and TLS) handshake: a reachable server answers in far less."""
    return min(config.timeout, 10.0)


class RateWatch:
    """The minimum-throughput rule of one response: fewer than ``config.min_rate`` bytes/s
    over any ``config.timeout``-second window is a stall (a byte a second never times out a
    socket read, so reads alone would wait forever)."""

    def __init__(self, config: TransferConfig, clock: Callable[[], float] = time.monotonic):
        self._window = config.timeout
        self._floor = config.min_rate * config.timeout
        self._clock = clock
        self._start = clock()
        self._bytes = 0

    def add(self, count: int, what: str, url: str) -> None:
        """Count ``count`` bytes just read; raise ``StallError`` when the window came up short."""
        self._bytes += count
        now = self._clock()
        if now - self._start < self._window:
            return
        if self._bytes < self._floor:
            raise StallError(
                f"{what}: stalled: {self._bytes} bytes in {now - self._start:.0f}s "
                f"(below the minimum of {_rate(self._floor / self._window)})",
                url=url,
            )
        self._start, self._bytes = now, 0


def _rate(bytes_per_second: float) -> str:
    if bytes_per_second >= 1 << 20:
        return f"{bytes_per_second / (1 << 20):g} MB/s"
    if bytes_per_second >= 1 << 10:
        return f"{bytes_per_second / (1 << 10):g} KB/s"
    return f"{bytes_per_second:g} B/s"


class HttpSession:
    """Keep-alive connections to one or more hosts, shared by a download's worker threads."""

    def __init__(self, config: TransferConfig, *, maxsize: int = 1):
        self.config = config
        self._maxsize = maxsize
        # A read that sees nothing for ``timeout`` seconds is a stall; so is a trickle (RateWatch).
        self._timeout = urllib3.Timeout(connect=connect_timeout(config), read=config.timeout)
        self._managers: dict[str | None, urllib3.PoolManager] = {}

    def _manager(self, url: str) -> urllib3.PoolManager:
        proxy = proxy_for(url)
        manager = self._managers.get(proxy)
        if manager is None:
            kwargs = {"maxsize": self._maxsize, "block": False, "retries": _REDIRECTS_ONLY}
            if proxy is None:
                manager = urllib3.PoolManager(num_pools=4, **kwargs)  # type: ignore[arg-type]
            else:
                log.debug("using proxy %s", proxy)
                manager = urllib3.ProxyManager(proxy, num_pools=4, **kwargs)  # type: ignore[arg-type]
            # Two threads may race to create the same manager; the loser's is simply unused.
            self._managers.setdefault(proxy, manager)
            manager = self._managers[proxy]
        return manager

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None = None
    ) -> urllib3.BaseHTTPResponse:
        """Send a request and return the response with its body unread.

        A status >= 400 raises ``HTTPStatusError`` (with ``retry_after`` from the header);
        connection failures and timeouts raise ``TransferError`` with code ``network``.
        """
        all_headers = {
            "User-Agent": self.config.user_agent,
            # A .tar.gz must arrive byte for byte: no transparent gzip from a CDN.
            "Accept-Encoding": "identity",
        }
        if headers:
            all_headers.update(headers)
        try:
            response = self._manager(url).request(
                method,
                url,
                headers=all_headers,
                preload_content=False,
                decode_content=False,
                timeout=self._timeout,
            )
        except Urllib3Error as exc:
            raise network_error(exc, f"{method} {url}", url, self.config) from exc
        if response.status >= 400:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self.discard(response)
            raise HTTPStatusError(response.status, url, retry_after=retry_after)
        return response

    def watch(self) -> RateWatch:
        """A fresh minimum-throughput rule for one response body."""
        return RateWatch(self.config)

    def read(
        self, response: urllib3.BaseHTTPResponse, amount: int, url: str, watch: RateWatch
    ) -> bytes:
        """Up to ``amount`` body bytes, as soon as some arrive (``b""`` only at the end).

        Network failures raise ``TransferError``; a body slower than the minimum rate, or
        silent for ``timeout`` seconds, raises ``StallError``.
        """
        what = f"GET {url}"
        try:
            data = response.read1(amount)
        except (Urllib3Error, OSError) as exc:
            raise network_error(exc, what, url, self.config) from exc
        watch.add(len(data), what, url)
        return data

    @staticmethod
    def release(response: urllib3.BaseHTTPResponse) -> None:
        """Hand a fully read response's connection back to the pool for keep-alive reuse."""
        response.release_conn()

    @staticmethod
    def discard(response: urllib3.BaseHTTPResponse) -> None:
        """Drop a response whose body is not wanted; its connection is closed, not reused."""
        try:
            response.close()
        except Exception:  # closing a broken socket may fail; nothing is lost
            pass
        response.release_conn()

    def close(self) -> None:
        for manager in self._managers.values():
            manager.clear()
        self._managers.clear()
