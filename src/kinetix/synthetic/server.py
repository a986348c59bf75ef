"""A local HTTP mirror: a folder served with Range, ETag, keep-alive, bandwidth caps and faults."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import mimetypes
import os
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from kinetix.errors import ConfigError
from kinetix.transfer.pacing import TokenBucket

log = logging.getLogger(__name__)

FAULT_KINDS = (
    "reset",  # close the connection (TCP RST) after ``after_bytes`` body bytes (default 0)
    "status",  # answer ``status`` (default 500) with a short text body
    "rate_limit",  # answer ``status`` (default 429) with ``Retry-After: retry_after`` (default 1)
    "truncate",  # promise the full Content-Length, send ``after_bytes`` (default half), close
    "slow_first_byte",  # wait ``delay`` seconds (default 1) before answering
    "no_range",  # ignore Range and If-Range, answer 200 with the whole file, no Accept-Ranges
    "no_content_length",  # no Content-Length: the body ends when the connection closes
    "html",  # answer 200 text/html with an error page instead of the file (S3/CDN style)
    "etag_change",  # report ``etag`` (default: the real one with "-changed") instead
    "stall",  # send the headers and ``after_bytes`` (default 0), then hang ``delay`` s (1 hour)
    "trickle",  # send the body at ``rate`` bytes/s (default 1): never silent long enough to time
    # out a socket read
    "flip_byte",  # flip the byte at ``offset`` (default: the middle); the ETag stays the good one
    "junk",  # answer 200 with ``size`` (default: the file's) random bytes under the file's type
)
# Faults that cut a body short only make sense for GET; HEAD requests pass them untouched.
_BODY_FAULTS = frozenset({"reset", "truncate", "stall", "trickle"})
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CAPPED_CHUNK = 64 << 10  # small sends keep a capped stream smooth
_UNCAPPED_CHUNK = 1 << 20


def _bandwidth_cap(bps: float) -> TokenBucket:
    """A bucket of bytes: callers reserve each chunk and sleep off any debt, so the rate holds
    on average, and debt makes concurrent senders queue fairly."""
    # A twentieth of a second of credit: enough to absorb scheduling jitter, too little to let
    # an idle connection burst far above its cap.
    return TokenBucket(bps, burst=max(bps / 20, _CAPPED_CHUNK), unit="bytes")


@dataclass
class Fault:
    """One injected misbehaviour for paths matching ``pattern`` (an fnmatch glob)."""

    pattern: str
    kind: str
    times: int | None = 1  # requests it hits before healing; None = forever
    skip: int = 0  # matching requests let through untouched before it starts
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0
    method: str | None = None  # only requests of this method match (None: any)

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it: when it arrived and when its answer was done
    (``time.monotonic()`` of the serving process), so tests measure rates and overlap here."""

    method: str
    path: str
    start: float
    end: float
    status: int = 0  # the answer's HTTP status (0: none was sent)


@dataclass
class MirrorStats:
    """What the server has done, per decoded path (``"600/train/abseiling.tar.gz"``)."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes_sent: Counter[str] = field(default_factory=Counter)  # body bytes only
    range_requests: int = 0  # requests carrying a Range header
    connections: int = 0  # TCP connections accepted (keep-alive keeps this low)
    throttle_seconds: float = 0.0  # waits imposed by the bandwidth caps, summed
    log: list[RequestRecord] = field(default_factory=list)  # every answered request, in order

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent.values())

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def copy(self) -> MirrorStats:
        return MirrorStats(
            Counter(self.requests),
            Counter(self.bytes_sent),
            self.range_requests,
            self.connections,
            self.throttle_seconds,
            list(self.log),
        )


class MirrorServer:
    """Serves ``root`` over HTTP/1.1 on ``host:port`` (0 = any free port) from worker threads.

    ``per_connection_bps`` caps each TCP connection and ``total_bps`` the whole server, like a
    CDN where one connection cannot fill the link. ``add_fault`` makes chosen paths misbehave.
    ETags are the file's hex MD5, as S3 gives a single-part object (``md5_etags=False``: an
    opaque size-mtime validator, as nginx gives).
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        per_connection_bps: float | None = None,
        total_bps: float | None = None,
        md5_etags: bool = True,
    ):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ConfigError(f"mirror root {root} is not a directory")
        self.host = host
        self.port = port
        self.per_connection_bps = per_connection_bps
        self.total_bps = total_bps
        self.md5_etags = md5_etags
        self._md5: dict[tuple[str, int, int], str] = {}
        self.total_bucket = _bandwidth_cap(total_bps) if total_bps else None
        self.chunk_size = _CAPPED_CHUNK if (per_connection_bps or total_bps) else _UNCAPPED_CHUNK
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()  # start/stop may come from different threads
        self._faults: list[Fault] = []
        self._stats = MirrorStats()
        self._httpd: _MirrorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()

    def etag(self, path: Path, stat: os.stat_result) -> str:
        """The strong validator of a file: its MD5 (S3 style) or size-mtime; replacing it
        changes it."""
        if not self.md5_etags:
            return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._md5.get(key)
        if known is None:
            digest = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            known = digest.hexdigest()
            with self._lock:
                self._md5[key] = known
        return f'"{known}"'

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> MirrorServer:
        with self._lifecycle:
            if self._httpd is None:
                self.stopping.clear()
                httpd = _MirrorHTTPServer((self.host, self.port), _MirrorHandler, self)
                self.port = httpd.server_address[1]
                self._thread = threading.Thread(
                    target=httpd.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name="kinetix-mirror",
                    daemon=True,
                )
                self._thread.start()
                self._httpd = httpd
                log.info("serving %s at %s", self.root, self.url)
        return self

    def serve_forever(self) -> None:
        """Start if needed, block until ``stop()`` or Ctrl-C, and release the port either way."""
        self.start()
        try:
            self.stopping.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop accepting, cut every open connection, and release the port."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None or thread is None:
            return
        self.stopping.set()
        httpd.shutdown()
        with self._lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        thread.join()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, with a trailing slash."""
        return f"http://{self.host}:{self.port}/"

    def url_for(self, relpath: str) -> str:
        """The percent-encoded URL of a file under ``root``."""
        return self.url + quote(relpath.lstrip("/"), safe="/")

    # --- faults and stats -----------------------------------------------------------------------

    def add_fault(
        self,
        pattern: str,
        kind: str,
        *,
        times: int | None = 1,
        skip: int = 0,
        method: str | None = None,
        **params: Any,
    ) -> Fault:
        """Make requests for paths matching ``pattern`` misbehave; see ``FAULT_KINDS``.

        The first active fault whose pattern (and ``method``, when given) matches is applied;
        ``times`` counts the requests it hits before healing (None: forever), after ``skip``
        untouched ones.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {kind!r}; valid kinds are {', '.join(FAULT_KINDS)}"
            )
        fault = Fault(pattern.lstrip("/"), kind, times, skip, dict(params), method=method)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def stats(self) -> MirrorStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats.copy()

    @property
    def open_connections(self) -> int:
        """TCP connections currently open (a killed client's close once the server notices)."""
        with self._lock:
            return len(self._open)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = MirrorStats()

    # --- used by the handler --------------------------------------------------------------------

    def take_fault(self, path: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.active or not fnmatch.fnmatchcase(path, fault.pattern):
                    continue
                if fault.method is not None and fault.method != method:
                    continue
                if method == "HEAD" and fault.kind in _BODY_FAULTS:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.hits += 1
                return fault
        return None

    def count_request(self, path: str, *, ranged: bool) -> None:
        with self._lock:
            self._stats.requests[path] += 1
            self._stats.range_requests += ranged

    def log_request(self, method: str, path: str, start: float, status: int = 0) -> None:
        record = RequestRecord(method, path, start, time.monotonic(), status)
        with self._lock:
            self._stats.log.append(record)

    def count_bytes(self, path: str, count: int, throttled: float) -> None:
        with self._lock:
            self._stats.bytes_sent[path] += count
            self._stats.throttle_seconds += throttled

    @contextlib.contextmanager
    def track(self, sock: socket.socket) -> Iterator[None]:
        with self._lock:
            self._open.add(sock)
            self._stats.connections += 1
        try:
            yield
        finally:
            with self._lock:
                self._open.discard(sock)


class _MirrorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() cuts connections itself; never wait on a slow client
    request_queue_size = 128  # many Range connections open at once

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], mirror: MirrorServer
    ):
        self.mirror = mirror
        self.resets: set[socket.socket] = set()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def shutdown_request(self, request: Any) -> None:
        if request in self.resets:
            # A "reset" fault: closing with SO_LINGER 0 and no FIN makes the kernel send RST.
            self.resets.discard(request)
            request.close()
            return
        super().shutdown_request(request)


def _content_type(path: Path) -> str:
    kind, encoding = mimetypes.guess_type(path.name)
    if encoding == "gzip":
        return "application/gzip"  # never Content-Encoding: clients must get the bytes as stored
    return kind or "application/octet-stream"


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` inclusive, ``None`` to ignore the header, or ``"unsatisfiable"``."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # multiple or malformed ranges: answering 200 with everything is allowed
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # "-n": the last n bytes
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - count), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # syntactically invalid: ignored, per RFC 9110
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kinetix-mirror"
    timeout = 120  # drop idle keep-alive connections eventually
    # Headers and body leave in separate sends; Nagle would hold the body for the client's ACK.
    disable_nagle_algorithm = True
    server: _MirrorHTTPServer

    def handle(self) -> None:
        with self.server.mirror.track(self.connection):
            try:
                super().handle()
            except (ConnectionError, TimeoutError):
                pass  # the client went away; nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._logged(head=False)

    def do_HEAD(self) -> None:
        self._logged(head=True)

    def _logged(self, *, head: bool) -> None:
        start = time.monotonic()
        self._status = 0
        try:
            self._serve(head=head)
        finally:
            self.server.mirror.log_request(
                self.command, unquote(urlsplit(self.path).path).lstrip("/"), start, self._status
            )

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    # --- answers --------------------------------------------------------------------------------

    def _simple(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _resolve(self) -> tuple[str, Path | None]:
        """The decoded relative path and the file it names (None if outside the root)."""
        raw = urlsplit(self.path).path
        relpath = unquote(raw).lstrip("/")
        parts = relpath.split("/")
        if any(part in ("..", ".") for part in parts) or "\x00" in relpath or "\\" in relpath:
            return relpath, None
        root = self.server.mirror.root
        target = (root / relpath).resolve()
        if target != root and root not in target.parents:
            return relpath, None  # a symlink pointing out of the root
        return relpath, target

    def _serve(self, *, head: bool) -> None:
        mirror = self.server.mirror
        relpath, target = self._resolve()
        range_header = self.headers.get("Range")
        mirror.count_request(relpath, ranged=range_header is not None)
        if target is None:
            self._simple(403, b"403 Forbidden: path outside the mirror\n", head=head)
            return
        fault = mirror.take_fault(relpath, self.command)
        kind = fault.kind if fault else None
        params = fault.params if fault else {}
        if kind == "slow_first_byte":
            mirror.stopping.wait(float(params.get("delay", 1.0)))
        if kind == "status":
            status = int(params.get("status", 500))
            self._simple(status, f"{status} injected fault\n".encode(), head=head)
            return
        if kind == "rate_limit":
            retry_after = params.get("retry_after", 1)
            self._simple(
                int(params.get("status", 429)),
                b"slow down\n",
                headers={"Retry-After": str(retry_after)},
                head=head,
            )
            return
        if kind == "html":
            page = b"<html><head><title>503</title></head><body><h1>Service Unavailable</h1></body>"
            self._simple(200, page, content_type="text/html; charset=utf-8", head=head)
            return
        if not target.is_file():
            self._simple(404, b"404 Not Found\n", head=head)
            return
        if kind == "junk":
            size = int(params.get("size", target.stat().st_size))
            body = random.Random(params.get("seed", 0)).randbytes(size)
            self._simple(200, body, content_type=_content_type(target), head=head)
            return
        self._serve_file(relpath, target, range_header, fault, head=head)

    def _serve_file(
        self,
        relpath: str,
        target: Path,
        range_header: str | None,
        fault: Fault | None,
        *,
        head: bool,
    ) -> None:
        kind = fault.kind if fault else None
        with open(target, "rb") as file:
            stat = os.fstat(file.fileno())
            size = stat.st_size
            etag = self.server.mirror.etag(target, stat)
            if kind == "etag_change":
                etag = fault.params.get("etag") or f'{etag[:-1]}-changed"'  # type: ignore[union-attr]
            first, last, status = 0, size - 1, 200
            if range_header is not None and kind != "no_range":
                if_range = self.headers.get("If-Range")
                wanted = _parse_range(range_header, size) if if_range in (None, etag) else None
                if wanted == "unsatisfiable":
                    self._simple(416, b"", headers={"Content-Range": f"bytes */{size}"}, head=head)
                    return
                if isinstance(wanted, tuple):
                    (first, last), status = wanted, 206
            count = max(0, last - first + 1)
            self.send_response(status)
            self.send_header("Content-Type", _content_type(target))
            if kind == "no_content_length":
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(count))
            if kind != "no_range":
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
            self.end_headers()
            if head:
                return
            limit = count
            if kind == "reset":
                limit = min(count, int(fault.params.get("after_bytes", 0)))  # type: ignore[union-attr]
            elif kind in ("truncate", "stall"):
                half = count // 2 if kind == "truncate" else 0
                limit = min(count, int(fault.params.get("after_bytes", half)))  # type: ignore[union-attr]
            if kind == "trickle":
                self._trickle(relpath, file, first, count, float(fault.params.get("rate", 1.0)))  # type: ignore[union-attr]
                return
            flip = None
            if kind == "flip_byte":
                flip = int(fault.params.get("offset", size // 2))  # type: ignore[union-attr]
            self._send_body(relpath, file, first, limit, flip)
            if kind == "stall":
                self.server.mirror.stopping.wait(float(fault.params.get("delay", 3600.0)))  # type: ignore[union-attr]
                self.close_connection = True
                return
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.resets.add(self.connection)
            self.close_connection = True
        elif kind == "truncate":
            self.close_connection = True

    def _send_body(
        self, relpath: str, file: Any, offset: int, count: int, flip: int | None = None
    ) -> None:
        mirror = self.server.mirror
        bucket = self._connection_bucket()
        sent = 0
        while sent < count:
            if mirror.stopping.is_set():
                raise ConnectionAbortedError("mirror stopping")
            size = min(mirror.chunk_size, count - sent)
            wait = 0.0
            for cap in (bucket, mirror.total_bucket):
                if cap is not None:
                    wait = max(wait, cap.reserve(size))
            if wait:
                mirror.stopping.wait(wait)
            # Counted before sending: a client that has read every byte must find them in
            # the stats. A failed send takes its count back.
            mirror.count_bytes(relpath, size, wait)
            sent_now = 0
            try:
                start = offset + sent
                if flip is not None and start <= flip < start + size:
                    data = bytearray(os.pread(file.fileno(), size, start))
                    data[flip - start] ^= 0xFF
                    self.connection.sendall(data)
                    sent_now = len(data)
                else:
                    sent_now = self.connection.sendfile(file, start, size)
            finally:
                if sent_now != size:
                    mirror.count_bytes(relpath, sent_now - size, 0.0)
            if sent_now == 0:
                raise ConnectionAbortedError(f"{relpath} shrank while being sent")
            sent += sent_now

    def _trickle(self, relpath: str, file: Any, offset: int, count: int, rate: float) -> None:
        """One byte every ``1 / rate`` seconds: each read sees data, the transfer never ends."""
        mirror = self.server.mirror
        for position in range(offset, offset + count):
            if mirror.stopping.wait(1.0 / rate):
                raise ConnectionAbortedError("mirror stopping")
            mirror.count_bytes(relpath, 1, 0.0)
            file.seek(position)
            self.connection.sendall(file.read(1))

    def _connection_bucket(self) -> TokenBucket | None:
        rate = self.server.mirror.per_connection_bps
        if rate is None:
            return None
        # One bucket per TCP connection, kept across its keep-alive requests.
        bucket: TokenBucket | None = getattr(self, "_bucket", None)
        if bucket is None:
            bucket = self._bucket = _bandwidth_cap(rate)
        return bucket
