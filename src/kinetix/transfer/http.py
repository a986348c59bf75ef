"""Simple HTTP fetches: probe a URL, fetch a small file whole; the response helpers they share.

The ranged, resumable shard download built on them is ``transfer/shard.py``; both retry through
``transfer/retry.py``'s ``Backoff.run``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3

from kinetix.config import TransferConfig
from kinetix.errors import (
    ErrorCode,
    HTTPStatusError,
    IntegrityError,
    TransferError,
)
from kinetix.transfer.connection import HttpSession
from kinetix.transfer.integrity import md5_from_etag
from kinetix.transfer.retry import Backoff

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

# Servers that refuse HEAD (S3 pre-signed GET URLs answer 403, some CDNs 405/501).
_HEAD_REFUSED = frozenset({400, 403, 405, 501})
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class RemoteInfo:
    """What the server says about a file before the body is fetched."""

    url: str
    size: int | None
    etag: str | None
    accepts_ranges: bool
    content_type: str | None


@dataclass(frozen=True)
class FetchResult:
    """A small file fetched whole: where it is and what it hashed to."""

    url: str
    path: Path
    size: int
    etag: str | None
    sha256: str
    bytes_transferred: int  # body bytes received, failed attempts included


# --- small helpers over responses -------------------------------------------------------------


def shut(response: urllib3.BaseHTTPResponse) -> None:
    """Shut down the socket under ``response``: a thread blocked reading it returns at once."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def response_header(response: urllib3.BaseHTTPResponse, name: str) -> str | None:
    """A header's value, stripped; None when absent or empty."""
    value = response.headers.get(name)
    return value.strip() if value else None


def response_int_header(response: urllib3.BaseHTTPResponse, name: str) -> int | None:
    value = response_header(response, name)
    return int(value) if value and value.isdigit() else None


def is_html(content_type: str | None) -> bool:
    return content_type is not None and content_type.lower().startswith("text/html")


def not_an_archive(url: str, content_type: str | None) -> TransferError:
    return TransferError(
        f"{url} answered with an HTML page (Content-Type: {content_type}) instead of the file; "
        "this is an error or login page from the mirror, a CDN or a proxy: check the URL "
        "(--mirror) and your network, then run again",
        url=url,
        code=ErrorCode.NOT_AN_ARCHIVE,
    )


def _info_from(response: urllib3.BaseHTTPResponse, url: str, *, ranged_probe: bool) -> RemoteInfo:
    size = response_int_header(response, "Content-Length")
    accepts = (response_header(response, "Accept-Ranges") or "").lower() == "bytes"
    if ranged_probe:
        # Answer to "Range: bytes=0-0": a 206 carries the real size in Content-Range.
        accepts = response.status == 206
        match = CONTENT_RANGE.fullmatch(response_header(response, "Content-Range") or "")
        if accepts:
            size = int(match.group(3)) if match and match.group(3) != "*" else None
    return RemoteInfo(
        url=url,
        size=size,
        etag=response_header(response, "ETag"),
        accepts_ranges=accepts,
        content_type=response_header(response, "Content-Type"),
    )


def _probe_once(session: HttpSession, url: str) -> RemoteInfo:
    try:
        response = session.request("HEAD", url)
    except HTTPStatusError as exc:
        if exc.status not in _HEAD_REFUSED:
            raise
        log.debug("HEAD %s refused with %d; probing with a one-byte GET", url, exc.status)
        response = session.request("GET", url, {"Range": "bytes=0-0"})
        info = _info_from(response, url, ranged_probe=True)
        session.discard(response)  # never drain: a 200 here may be a 50 GB body
        return info
    info = _info_from(response, url, ranged_probe=False)
    session.release(response)
    return info


def probe_with(session: HttpSession, url: str, backoff: Backoff) -> RemoteInfo:
    """``probe`` on an open session, retrying as ``backoff`` says."""
    return backoff.run(lambda: _probe_once(session, url), url=url, kept="nothing was downloaded")


def probe(url: str, config: TransferConfig) -> RemoteInfo:
    """Size, ETag, Range support and content type of ``url`` (HEAD, or a 1-byte GET if refused).

    Transient failures are retried like any transfer; 404 raises ``HTTPStatusError``.
    """
    session = HttpSession(config)
    try:
        return probe_with(session, url, Backoff(config))
    finally:
        session.close()


# --- small files --------------------------------------------------------------------------------


def fetch_file(
    url: str, dest: Path, config: TransferConfig, *, progress: Progress | None = None
) -> FetchResult:
    """Download ``url`` to ``dest`` through ``dest.part``, hashing while streaming.

    Meant for small files (annotation lists): a failed attempt starts over from byte 0.
    ``dest`` appears only complete (atomic rename); on failure no ``.part`` is left behind.
    ``progress`` receives the byte count of each chunk written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = HttpSession(config)
    backoff = Backoff(config)
    received = [0]
    try:
        size, etag, digest = backoff.run(
            lambda: _fetch_once(session, url, part, config, progress, received),
            url=url,
            kept=f"{dest} was not written",
        )
        os.replace(part, dest)
        return FetchResult(url, dest, size, etag, digest, received[0])
    finally:
        session.close()
        part.unlink(missing_ok=True)


def _fetch_once(
    session: HttpSession,
    url: str,
    part: Path,
    config: TransferConfig,
    progress: Progress | None,
    received: list[int],
) -> tuple[int, str | None, str]:
    response = session.request("GET", url)
    try:
        content_type = response_header(response, "Content-Type")
        if is_html(content_type) and not url.lower().endswith((".html", ".htm")):
            raise not_an_archive(url, content_type)
        expected = response_int_header(response, "Content-Length")
        sha = hashlib.sha256()
        # An S3 single-part ETag is the body's MD5: a small file is checked against it too
        # (a flipped byte in an annotation file would otherwise be cached and read for good).
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        watch = session.watch()
        with open(part, "wb") as out:
            while data := session.read(response, config.chunk_size, url, watch):
                out.write(data)
                sha.update(data)
                md5.update(data)
                size += len(data)
                received[0] += len(data)
                if progress is not None:
                    progress(len(data))
        if expected is not None and size != expected:
            raise IntegrityError(
                f"GET {url}: body ended after {size} of {expected} bytes (truncated)", url=url
            )
        etag = response_header(response, "ETag")
        promised = md5_from_etag(etag)
        if promised is not None and md5.hexdigest() != promised:
            raise IntegrityError(
                f"GET {url}: the body's MD5 is {md5.hexdigest()}, its ETag says {promised} "
                "(damaged in transit)",
                url=url,
            )
        session.release(response)
        return size, etag, sha.hexdigest()
    except BaseException:
        session.discard(response)
        raise


def __getattr__(name: str) -> object:
    # The shard download lived here until it got its own module; the old import path still works.
    if name in ("ShardDownload", "ShardReader", "ShardResult"):
        from kinetix.transfer import shard

        return getattr(shard, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
