"""The large-file download: resumable multi-connection Range pieces, readable as they arrive."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

import urllib3

from kinetix.config import TransferConfig
from kinetix.crashpoints import crash_point
from kinetix.errors import (
    DiskSpaceError,
    HTTPStatusError,
    IntegrityError,
    KinetixError,
    TransferError,
)
from kinetix.transfer.connection import HttpSession
from kinetix.transfer.http import (
    CONTENT_RANGE,
    Progress,
    RemoteInfo,
    is_html,
    not_an_archive,
    probe_with,
    response_header,
    response_int_header,
    shut,
)
from kinetix.transfer.resume import ResumeState, write_state
from kinetix.transfer.retry import Backoff

log = logging.getLogger(__name__)

# A remote file that keeps changing under us is not going to settle by trying forever.
_MAX_RESTARTS = 3
# A file cut into fewer pieces than this per connection streams badly: the watermark moves at
# one connection's share of the link until the head piece is done (8 connections, 4 MiB
# pieces, 1 MB/s: nothing to read for ~32 s, then most of the file at once).
PIECES_PER_CONNECTION = 16
MIN_PIECE = 256 << 10  # below this a Range request costs more than it carries


@dataclass(frozen=True)
class ShardResult:
    """A finished shard download; ``path`` is the complete ``.part`` file, left for the caller."""

    url: str
    path: Path
    size: int
    etag: str | None
    bytes_transferred: int  # body bytes received by this run, retries included
    resumed_bytes: int  # bytes a previous run had already written
    connections: int  # 1 when the server forced a single stream


class _RangeIgnored(Exception):
    """The server answered a Range request with the whole file (200)."""


class _RemoteChanged(Exception):
    """The ETag or size of the remote file differs from the one the download started with."""


class _Halted(Exception):
    """The download was aborted."""


def piece_length(limit: int, size: int, connections: int) -> int:
    """The Range piece for a file of ``size`` bytes over ``connections``: ``limit``
    (``--piece-size``) at most, smaller for a file too small for ``PIECES_PER_CONNECTION``
    pieces a connection, but not below ``MIN_PIECE`` (nor above ``limit`` when it is below).

    Pieces are handed out in order and the streamed prefix waits for the head piece, which
    arrives at one connection's share of the link; so the reader trails the transfer by about
    ``connections`` pieces. A K400 shard (~1.8 GB) keeps 4 MiB pieces; a 50 MB one gets ~400 KB,
    and a clip extracted (and transcoded) from it lands seconds after its bytes, not at the end.
    Resume is unaffected: ``.state`` records byte ranges, whatever cut wrote them.
    """
    if limit <= MIN_PIECE:
        return limit
    per = -(-size // (max(connections, 1) * PIECES_PER_CONNECTION))
    return max(MIN_PIECE, min(limit, per))


class ShardDownload:
    """One large file fetched over ``config.connections`` keep-alive Range connections.

    The body is cut into pieces of at most ``config.piece_size`` (``piece_length``) handed out
    in order, so the contiguous prefix of ``part_path`` (the watermark) advances steadily and
    ``reader()`` can stream it while the rest arrives. Finished pieces are recorded in
    ``part_path.state``; a new ``ShardDownload`` on the same paths after a crash fetches only
    the missing pieces. A server without Range support (or without Content-Length) gets one
    plain stream from byte 0.

    Typical use::

        with ShardDownload(url, part, config) as download:
            extract(download.reader())
            result = download.finish()  # then delete or rename result.path

    Leaving the ``with`` block without ``finish()`` aborts: threads stop, and the ``.part`` and
    ``.state`` files stay for the next run.
    """

    def __init__(
        self,
        url: str,
        part_path: Path,
        config: TransferConfig,
        *,
        info: RemoteInfo | None = None,
        progress: Progress | None = None,
    ):
        self.url = url
        self.part_path = Path(part_path)
        self.state_path = self.part_path.with_name(self.part_path.name + ".state")
        self.config = config
        self._info = info
        self._progress = progress
        self._progress_lock = threading.Lock()
        self._unreported = 0  # bytes fetched while no progress callback was attached
        self._session = HttpSession(config, maxsize=config.connections)
        self._cancel = threading.Event()  # abort(): stop for good
        self._halt = threading.Event()  # stop this round's workers (abort or a worker failed)
        self._backoff = Backoff(config, self._halt)
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._result: ShardResult | None = None
        self._state_lock = threading.Lock()  # serialises sidecar writes, in order
        # Everything below is guarded by _cond; readers wait on it for the watermark.
        self._cond = threading.Condition()
        self._generation = 0  # bumped whenever partial data is discarded
        self._watermark = 0  # bytes [0, watermark) of the part file are final
        self._size: int | None = None
        self._etag: str | None = None
        self._complete = False
        self._error: BaseException | None = None
        self._transferred = 0
        self._resumed = 0
        self._connections = 1
        self._state: ResumeState | None = None
        self._pieces: list[tuple[int, int]] = []
        self._done = bytearray()
        self._filled: dict[int, int] = {}
        self._queue: deque[int] = deque()
        self._head = 0
        self._worker_error: BaseException | None = None
        self._live: set[urllib3.BaseHTTPResponse] = set()  # bodies being read, for cancel()

    # --- public ---------------------------------------------------------------------------------

    def start(self) -> ShardDownload:
        """Begin downloading in the background (probe, resume check, workers); returns at once."""
        if self._thread is None:
            self.part_path.parent.mkdir(parents=True, exist_ok=True)
            # Opened without truncation: existing bytes are what a resume continues from.
            self._fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
            self._thread = threading.Thread(
                target=self._run, name=f"kinetix-shard:{self.part_path.name}", daemon=True
            )
            self._thread.start()
        return self

    def reader(self) -> ShardReader:
        """A binary file object over the bytes downloaded so far; reads block for more.

        It returns EOF at the end of the file, and raises the download's error if it fails
        (or ``IntegrityError`` if the remote file changed after some of it was read).
        """
        self.start()
        return ShardReader(self)

    def finish(self) -> ShardResult:
        """Wait for the whole file; on success drop the sidecar and return the result.

        On failure raise the transfer error; the ``.part`` and ``.state`` files are kept so
        the next run resumes. The complete file stays at ``part_path`` for the caller.
        """
        if self._result is not None:
            return self._result
        self.start()
        assert self._thread is not None
        self._thread.join()
        with self._cond:
            error, size = self._error, self._size
        if error is not None:
            self._close()
            raise error
        assert size is not None
        actual = os.fstat(self._fd).st_size
        if actual != size:
            self._close()
            raise IntegrityError(f"{self.part_path} holds {actual} bytes, expected {size}")
        self._close()
        self.state_path.unlink(missing_ok=True)
        self._result = ShardResult(
            self.url,
            self.part_path,
            size,
            self._etag,
            self._transferred,
            self._resumed,
            self._connections,
        )
        return self._result

    def cancel(self) -> None:
        """Start stopping without waiting: safe from any thread, returns at once.

        Transfer threads stop at their next chunk, sockets blocked in a read are shut down,
        and a reader waiting for bytes raises the abort error. ``abort()`` then joins them.
        """
        if self._result is not None:
            return
        self._cancel.set()
        self._halt.set()
        with self._cond:
            if not self._complete and self._error is None:
                self._error = TransferError(
                    f"download of {self.url} was aborted; partial file kept for resume at "
                    f"{self.part_path}",
                    url=self.url,
                )
            live = list(self._live)
            self._cond.notify_all()
        for response in live:
            shut(response)

    def abort(self) -> None:
        """Stop all transfer threads; keep the ``.part`` and ``.state`` files for resume."""
        if self._result is not None:
            return
        self.cancel()
        if self._thread is not None:
            self._thread.join()
        self._close()

    @property
    def bytes_transferred(self) -> int:
        with self._cond:
            return self._transferred

    @property
    def size(self) -> int | None:
        with self._cond:
            return self._size

    @property
    def etag(self) -> str | None:
        """The ETag the bytes being downloaded carry (known once the first bytes are readable)."""
        with self._cond:
            return self._etag

    def __enter__(self) -> ShardDownload:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()

    # --- coordinator --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            info = self._info or probe_with(self._session, self.url, self._backoff)
            for _ in range(_MAX_RESTARTS + 1):
                self._rearm()
                if is_html(info.content_type):
                    raise not_an_archive(self.url, info.content_type)
                try:
                    if info.size == 0:
                        self._finish_empty()
                    elif info.accepts_ranges and info.size is not None:
                        self._run_ranged(info)
                    else:
                        self._run_single(info)
                    return
                except _RangeIgnored:
                    log.warning(
                        "%s: the server ignored a Range request; falling back to one stream "
                        "from byte 0 (no parallel connections, no resume)",
                        self.url,
                    )
                    self._discard_partial()
                    info = replace(info, accepts_ranges=False)
                except _RemoteChanged as changed:
                    log.warning("%s; discarding partial data and starting over", changed)
                    self._discard_partial()
                    self._rearm()  # the failed round set _halt; the re-probe may need to wait
                    info = probe_with(self._session, self.url, self._backoff)
            raise IntegrityError(
                f"{self.url} changed on the server {_MAX_RESTARTS + 1} times during the download; "
                "try again later",
                url=self.url,
            )
        except _Halted:
            pass  # abort() records its own error
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the .state sidecar
                exc = self._no_space(exc)
            if not isinstance(exc, KinetixError):
                log.exception("unexpected failure downloading %s", self.url)
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _rearm(self) -> None:
        """Clear the halt left by a failed round, unless abort() asked to stop for good."""
        self._halt.clear()
        if self._cancel.is_set():
            self._halt.set()
            raise _Halted

    def _finish_empty(self) -> None:
        os.ftruncate(self._fd, 0)
        with self._cond:
            self._size = 0
            self._complete = True
            self._cond.notify_all()

    def _mark_complete(self, size: int, etag: str | None) -> None:
        with self._cond:
            self._size = size
            self._etag = etag
            self._watermark = size
            self._complete = True
            self._cond.notify_all()

    def _discard_partial(self) -> None:
        """Forget every byte written so far (the remote changed, or ranges turned out unusable)."""
        with self._cond:
            self._generation += 1
            self._watermark = 0
            self._resumed = 0
            self._state = None
            self._cond.notify_all()
        self.state_path.unlink(missing_ok=True)
        os.ftruncate(self._fd, 0)

    def report_to(self, progress: Progress | None) -> None:
        """Count this download's bytes into ``progress`` from now on, the bytes it fetched
        before included (a shard started ahead of its task, handed to the task)."""
        with self._progress_lock:
            self._progress = progress
            if progress is not None and self._unreported:
                progress(self._unreported)
                self._unreported = 0

    def _report(self, count: int) -> None:
        if count:
            with self._progress_lock:  # callers need not make their callback thread-safe
                if self._progress is None:
                    self._unreported += count
                else:
                    self._progress(count)

    # --- ranged mode ----------------------------------------------------------------------------

    def _load_state(self, info: RemoteInfo, size: int) -> ResumeState:
        state = ResumeState.load(self.state_path)
        if state is not None:
            on_disk = os.fstat(self._fd).st_size
            if (state.size, state.etag) != (size, info.etag):
                log.warning(
                    "%s changed since the last run (size %d → %d, ETag %s → %s); "
                    "discarding %d partial bytes",
                    self.url,
                    state.size,
                    size,
                    state.etag,
                    info.etag,
                    state.done_bytes,
                )
                state = None
            elif on_disk != size:
                log.warning(
                    "%s is %d bytes, expected %d; starting over", self.part_path, on_disk, size
                )
                state = None
        if state is None:
            state = ResumeState(self.url, size, info.etag)
            os.ftruncate(self._fd, 0)
        elif state.done_bytes:
            log.info(
                "%s: resuming with %d of %d bytes already done", self.url, state.done_bytes, size
            )
        state.url = self.url
        # Sparse until written; a rerun then finds the file at its final size.
        os.ftruncate(self._fd, size)
        return state

    def _run_ranged(self, info: RemoteInfo) -> None:
        size = info.size
        assert size is not None
        state = self._load_state(info, size)
        piece = piece_length(self.config.piece_size, size, self.config.connections)
        pieces = [(start, min(start + piece, size)) for start in range(0, size, piece)]
        done = bytearray(state.covers(lo, hi) for lo, hi in pieces)
        resumed = sum(hi - lo for (lo, hi), d in zip(pieces, done) if d)
        with self._cond:
            self._state = state
            self._size = size
            self._etag = info.etag
            self._pieces = pieces
            self._done = done
            self._filled = {}
            self._queue = deque(i for i, d in enumerate(done) if not d)
            self._head = 0
            self._advance_head()
            self._resumed = resumed
            self._worker_error = None
            self._connections = min(self.config.connections, len(self._queue)) or 1
        self._save_state()
        self._report(resumed)
        workers = [
            threading.Thread(
                target=self._work, args=(info,), name=f"kinetix-range-{i}", daemon=True
            )
            for i in range(self._connections if self._queue else 0)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self._cancel.is_set():
            raise _Halted
        if self._worker_error is not None:
            raise self._worker_error
        self._mark_complete(size, info.etag)

    def _advance_head(self) -> None:
        """Move the watermark past every finished piece (caller holds ``_cond``)."""
        while self._head < len(self._pieces) and self._done[self._head]:
            self._head += 1
        if self._head == len(self._pieces):
            self._watermark = self._size or 0
        else:
            self._watermark = self._pieces[self._head][0] + self._filled.get(self._head, 0)
        self._cond.notify_all()

    def _save_state(self) -> None:
        with self._state_lock:
            with self._cond:
                if self._state is None:
                    return
                text = self._state.to_json()
            write_state(self.state_path, text)

    def _work(self, info: RemoteInfo) -> None:
        try:
            while not self._halt.is_set():
                with self._cond:
                    if not self._queue:
                        return
                    index = self._queue.popleft()
                self._fetch_piece(index, info)
        except _Halted:
            pass
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the .state sidecar
                exc = self._no_space(exc)
            with self._cond:
                if self._worker_error is None:
                    self._worker_error = exc
            self._halt.set()

    def _fetch_piece(self, index: int, info: RemoteInfo) -> None:
        start, end = self._pieces[index]
        with self._cond:
            self._filled[index] = 0
        asked = [start]  # where the latest attempt's range began, for the retry message

        def attempt() -> None:
            if self._halt.is_set():
                raise _Halted
            with self._cond:
                asked[0] = start + self._filled[index]
            self._fetch_range(index, asked[0], end, info)

        self._backoff.run(
            attempt,
            url=self.url,
            kept=f"partial file kept for resume at {self.part_path}",
            note=lambda: f"bytes {asked[0]}-{end - 1}",
        )
        with self._state_lock:
            with self._cond:
                self._done[index] = 1
                del self._filled[index]
                if index == self._head:
                    self._advance_head()
                assert self._state is not None
                self._state.add(start, end)
                text = self._state.to_json()
            write_state(self.state_path, text)

    def _check_identity(self, response: urllib3.BaseHTTPResponse, info: RemoteInfo) -> None:
        content_type = response_header(response, "Content-Type")
        if is_html(content_type):
            raise not_an_archive(self.url, content_type)
        etag = response_header(response, "ETag")
        if info.etag is not None and etag is not None and etag != info.etag:
            raise _RemoteChanged(f"{self.url} changed on the server (ETag {info.etag} → {etag})")

    def _fetch_range(self, index: int, offset: int, end: int, info: RemoteInfo) -> None:
        headers = {"Range": f"bytes={offset}-{end - 1}"}
        if info.etag and not info.etag.startswith("W/"):
            # If the file changed, a compliant server answers 200 with the new ETag.
            headers["If-Range"] = info.etag
        try:
            response = self._session.request("GET", self.url, headers)
        except HTTPStatusError as exc:
            if exc.status == 416:  # the range no longer fits: the file shrank
                raise _RemoteChanged(
                    f"{self.url} answered 416 to bytes {offset}-{end - 1}"
                ) from exc
            raise
        try:
            self._check_identity(response, info)
            if response.status == 200:
                raise _RangeIgnored
            if response.status != 206:
                raise TransferError(
                    f"GET {self.url}: unexpected HTTP {response.status} to a Range request",
                    url=self.url,
                )
            match = CONTENT_RANGE.fullmatch(response_header(response, "Content-Range") or "")
            if match is None or (int(match.group(1)), int(match.group(2))) != (offset, end - 1):
                raise IntegrityError(
                    f"GET {self.url}: asked for bytes {offset}-{end - 1}, got Content-Range "
                    f"{response_header(response, 'Content-Range')!r}",
                    url=self.url,
                )
            if match.group(3) != "*" and int(match.group(3)) != info.size:
                raise _RemoteChanged(
                    f"{self.url} changed on the server (size {info.size} → {match.group(3)})"
                )
            with self._reading(response):
                self._stream_into(response, offset, end, index)
            self._session.release(response)
        except BaseException:
            self._session.discard(response)
            raise

    @contextlib.contextmanager
    def _reading(self, response: urllib3.BaseHTTPResponse) -> Iterator[None]:
        """While a body is read, ``cancel()`` may shut its socket to unblock the read."""
        with self._cond:
            self._live.add(response)
            cancelled = self._cancel.is_set()
        try:
            if cancelled:
                raise _Halted
            yield
        finally:
            with self._cond:
                self._live.discard(response)

    def _stream_into(
        self, response: urllib3.BaseHTTPResponse, offset: int, end: int, index: int
    ) -> None:
        chunk = self.config.chunk_size
        position = offset
        watch = self._session.watch()
        while position < end:
            if self._halt.is_set():
                raise _Halted
            data = self._session.read(response, min(chunk, end - position), self.url, watch)
            if not data:
                raise IntegrityError(
                    f"GET {self.url}: body ended after {position - offset} of {end - offset} "
                    "bytes (truncated)",
                    url=self.url,
                )
            self._write(data, position)
            position += len(data)
            with self._cond:
                self._transferred += len(data)
                self._filled[index] += len(data)
                if index == self._head:
                    self._watermark += len(data)
                    self._cond.notify_all()
            self._report(len(data))

    def _write(self, data: bytes, position: int) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, position)
                view = view[written:]
                position += written
            crash_point("download.transfer")
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise self._no_space(exc) from exc
            raise

    def _no_space(self, exc: OSError) -> DiskSpaceError:
        error = DiskSpaceError(
            f"no space left on the disk of {self.part_path} while downloading {self.url}; "
            "the partial file is kept: free space, then rerun the same command to resume"
        )
        error.__cause__ = exc
        return error

    # --- single-stream mode ---------------------------------------------------------------------

    def _run_single(self, info: RemoteInfo) -> None:
        self.state_path.unlink(missing_ok=True)  # a plain stream cannot resume: no sidecar
        os.ftruncate(self._fd, 0)
        with self._cond:
            self._connections = 1
            self._size = info.size
            self._etag = info.etag

        def attempt() -> int:
            if self._cancel.is_set():
                raise _Halted
            return self._stream_whole(info)

        size = self._backoff.run(
            attempt,
            url=self.url,
            kept="the server does not support resuming, so the next run starts over",
        )
        os.ftruncate(self._fd, size)
        self._mark_complete(size, info.etag)

    def _stream_whole(self, info: RemoteInfo) -> int:
        """One GET from byte 0 to EOF; returns the size. A retry rewrites the same bytes."""
        response = self._session.request("GET", self.url)
        try:
            self._check_identity(response, info)
            with self._reading(response):
                return self._read_whole(response)
        except BaseException:
            self._session.discard(response)
            raise

    def _read_whole(self, response: urllib3.BaseHTTPResponse) -> int:
        expected = response_int_header(response, "Content-Length")
        position = 0
        chunk = self.config.chunk_size
        watch = self._session.watch()
        while True:
            if self._halt.is_set():
                raise _Halted
            data = self._session.read(response, chunk, self.url, watch)
            if not data:
                break
            self._write(data, position)
            position += len(data)
            with self._cond:
                self._transferred += len(data)
                fresh = max(0, position - self._watermark)
                self._watermark += fresh
                if fresh:
                    self._cond.notify_all()
            self._report(fresh)  # bytes rewritten by a retry were already reported
        if expected is not None and position != expected:
            raise IntegrityError(
                f"GET {self.url}: body ended after {position} of {expected} bytes (truncated)",
                url=self.url,
            )
        self._session.release(response)
        return position

    # --- teardown -------------------------------------------------------------------------------

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._session.close()


class ShardReader(io.RawIOBase):
    """Reads a ``ShardDownload``'s part file up to its watermark, waiting for more bytes."""

    def __init__(self, download: ShardDownload):
        super().__init__()
        self._download = download
        self._fd = os.open(download.part_path, os.O_RDONLY)
        self._position = 0
        with download._cond:
            self._generation = download._generation

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        download = self._download
        want = len(buffer)
        if want == 0:
            return 0
        with download._cond:
            while True:
                self._check_generation()
                if download._error is not None:
                    raise download._error
                available = download._watermark - self._position
                if available > 0:
                    break
                if download._complete:
                    return 0
                download._cond.wait()
        view = memoryview(buffer).cast("B")[: min(want, available)]
        count = os.preadv(self._fd, [view], self._position)
        with download._cond:
            # A restart may have truncated the file between the wait and the read.
            self._check_generation()
        self._position += count
        return count

    def readall(self) -> bytes:
        # RawIOBase's default reads 8 KiB at a time; whole-file reads deserve bigger steps.
        parts = []
        while chunk := self.read(self._download.config.chunk_size):
            parts.append(chunk)
        return b"".join(parts)

    def _check_generation(self) -> None:
        download = self._download
        if self._generation == download._generation:
            return
        if self._position:
            raise IntegrityError(
                f"{download.url} changed on the server after {self._position} bytes had been "
                "read; partial data discarded, run again to fetch the new version",
                url=download.url,
            )
        self._generation = download._generation

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()
