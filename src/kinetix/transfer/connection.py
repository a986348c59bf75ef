"""HTTP connections for transfers: keep-alive pools, proxies from the environment, error mapping."""

from __future__ import annotations

import ipaddress
import logging
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from kinetix.config import TransferConfig
from kinetix.errors import ErrorCode, HTTPStatusError, TransferError
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


def describe_network_error(exc: BaseException, timeout: float) -> str:
    """A short, human sentence for a urllib3/socket failure."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, (Urllib3Timeout, TimeoutError)):
        return f"no data for {timeout:g}s (timed out)"
    text = str(exc.args[-1] if exc.args else exc)
    if "IncompleteRead" in text or "InvalidChunkLength" in text:
        return f"connection closed before the body ended ({text})"
    if isinstance(exc, ConnectionError) or "reset" in text.lower() or "aborted" in text.lower():
        return f"connection reset ({text})"
    return f"{type(exc).__name__}: {text}"


class HttpSession:
    """Keep-alive connections to one or more hosts, shared by a download's worker threads."""

    def __init__(self, config: TransferConfig, *, maxsize: int = 1):
        self.config = config
        self._maxsize = maxsize
        self._timeout = urllib3.Timeout(connect=config.timeout, read=config.timeout)
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
            raise TransferError(
                f"{method} {url}: {describe_network_error(exc, self.config.timeout)}",
                url=url,
                code=ErrorCode.NETWORK,
            ) from exc
        if response.status >= 400:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self.discard(response)
            raise HTTPStatusError(response.status, url, retry_after=retry_after)
        return response

    def read(self, response: urllib3.BaseHTTPResponse, amount: int, url: str) -> bytes:
        """Up to ``amount`` body bytes (fewer only at the end); network failures raise."""
        try:
            return response.read(amount)
        except (Urllib3Error, OSError) as exc:
            raise TransferError(
                f"GET {url}: {describe_network_error(exc, self.config.timeout)}",
                url=url,
                code=ErrorCode.NETWORK,
            ) from exc

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
