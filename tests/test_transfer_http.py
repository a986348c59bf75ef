"""The download engine over the real mirror server: pieces, resume, streaming, retries, faults."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fakes import SleepRecorder

from kinetix.config import TransferConfig
from kinetix.errors import ErrorCode, HTTPStatusError, IntegrityError, TransferError
from kinetix.synthetic.server import MirrorServer
from kinetix.transfer import retry
from kinetix.transfer.connection import proxy_for
from kinetix.transfer.http import fetch_file, probe
from kinetix.transfer.resume import ResumeState
from kinetix.transfer.shard import MIN_PIECE, ShardDownload, piece_length

PIECE = 256 << 10
SIZE = 3 * (1 << 20) + 12345  # 13 pieces, the last one short
NAME = "600/train/massaging person's head.tar.gz"


def config(**overrides: object) -> TransferConfig:
    settings: dict[str, object] = {
        "connections": 4,
        "piece_size": PIECE,
        "chunk_size": 64 << 10,
        "retries": 3,
        "timeout": 5.0,
    }
    settings.update(overrides)
    return TransferConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    (root / "600/train").mkdir(parents=True)
    (root / NAME).write_bytes(os.urandom(SIZE))
    (root / "600/annotations").mkdir()
    (root / "600/annotations/val.csv").write_text("label,youtube_id\nabseiling,abc\n" * 500)
    (root / "empty.tar.gz").write_bytes(b"")
    return root


@pytest.fixture
def server(root: Path) -> Iterator[MirrorServer]:
    with MirrorServer(root) as server:
        yield server


@pytest.fixture
def url(server: MirrorServer) -> str:
    return server.url_for(NAME)


@pytest.fixture
def part(tmp_path: Path) -> Path:
    return tmp_path / "dl" / ".kinetix" / "partial" / "shard.tar.gz.part"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_of(part: Path) -> Path:
    return part.with_name(part.name + ".state")


# --- probe and small files --------------------------------------------------------------------


def test_probe_reports_size_etag_ranges_and_type(server: MirrorServer, url: str) -> None:
    info = probe(url, config())
    assert (info.size, info.accepts_ranges) == (SIZE, True)
    assert info.etag and info.etag.startswith('"')
    assert info.content_type == "application/gzip"


def test_probe_falls_back_to_a_one_byte_get_when_head_is_refused(
    server: MirrorServer, url: str
) -> None:
    server.add_fault(NAME, "status", status=405)
    info = probe(url, config())
    assert (info.size, info.accepts_ranges) == (SIZE, True)
    assert server.stats.range_requests == 1 and server.stats.requests[NAME] == 2


def test_fetch_file_hashes_while_streaming_and_renames_atomically(
    server: MirrorServer, root: Path, tmp_path: Path
) -> None:
    seen: list[int] = []
    dest = tmp_path / "ann" / "val.csv"
    result = fetch_file(
        server.url_for("600/annotations/val.csv"), dest, config(), progress=seen.append
    )
    data = (root / "600/annotations/val.csv").read_bytes()
    assert dest.read_bytes() == data
    assert (result.size, result.sha256, result.bytes_transferred) == (
        len(data),
        sha(data),
        len(data),
    )
    assert result.etag is not None and sum(seen) == len(data)
    assert not dest.with_name("val.csv.part").exists()


def test_fetch_file_retries_transient_errors(
    server: MirrorServer, root: Path, tmp_path: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault("*.csv", "status", status=503)
    server.add_fault("*.csv", "truncate")
    dest = tmp_path / "val.csv"
    result = fetch_file(server.url_for("600/annotations/val.csv"), dest, config(chunk_size=1024))
    assert result.sha256 == sha((root / "600/annotations/val.csv").read_bytes())
    assert len(sleeps.calls) == 2
    assert result.bytes_transferred > result.size  # the truncated attempt counted too


def test_fetch_file_404_is_not_retried(
    server: MirrorServer, tmp_path: Path, sleeps: SleepRecorder
) -> None:
    out = tmp_path / "out"
    with pytest.raises(HTTPStatusError) as caught:
        fetch_file(server.url_for("600/annotations/missing.csv"), out / "m.csv", config())
    assert caught.value.code is ErrorCode.HTTP_404 and caught.value.status == 404
    assert sleeps.calls == [] and server.stats.total_requests == 1
    assert list(out.iterdir()) == []


def test_fetch_file_gives_up_with_a_clear_message(
    server: MirrorServer, tmp_path: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault("*.csv", "status", status=500, times=None)
    url = server.url_for("600/annotations/val.csv")
    with pytest.raises(TransferError, match="gave up after 3 attempts") as caught:
        fetch_file(url, tmp_path / "val.csv", config(retries=2))
    assert url in str(caught.value) and "HTTP 500" in str(caught.value)
    assert caught.value.code is ErrorCode.HTTP_ERROR
    assert len(sleeps.calls) == 2 and not (tmp_path / "val.csv.part").exists()


def test_fetch_file_rejects_an_html_error_page(server: MirrorServer, tmp_path: Path) -> None:
    server.add_fault("*.csv", "html")
    with pytest.raises(TransferError) as caught:
        fetch_file(server.url_for("600/annotations/val.csv"), tmp_path / "val.csv", config())
    assert caught.value.code is ErrorCode.NOT_AN_ARCHIVE


# --- shards: the happy path ---------------------------------------------------------------------


def test_shard_over_several_connections_is_byte_identical(
    server: MirrorServer, root: Path, url: str, part: Path
) -> None:
    seen: list[int] = []
    with ShardDownload(url, part, config(), progress=seen.append) as download:
        result = download.finish()
    assert part.read_bytes() == (root / NAME).read_bytes()
    assert (result.size, result.connections, result.resumed_bytes) == (SIZE, 4, 0)
    assert result.bytes_transferred == SIZE and sum(seen) == SIZE
    stats = server.stats
    assert stats.range_requests == 13  # one per piece
    assert stats.bytes_sent[NAME] == SIZE
    assert stats.connections <= 5  # keep-alive: HEAD plus one connection per worker
    assert not state_of(part).exists()


def test_a_small_file_is_cut_finer_than_piece_size_so_its_prefix_streams(
    server: MirrorServer, root: Path, url: str, part: Path
) -> None:
    # The default 4 MiB pieces would make this 3 MB file one piece on one connection, readable
    # only when it is all there; cut into 256 KiB pieces, 4 connections share it and the
    # prefix moves as they land. Same bytes, same resume state format.
    with ShardDownload(url, part, config(piece_size=4 << 20)) as download:
        result = download.finish()
    assert part.read_bytes() == (root / NAME).read_bytes()
    assert result.connections == 4
    assert server.stats.range_requests == 13  # ceil(SIZE / 256 KiB)


def test_piece_length_keeps_large_files_at_piece_size() -> None:
    mib = 1 << 20
    assert piece_length(4 * mib, 1800 * mib, 8) == 4 * mib  # a K400 shard: unchanged
    assert piece_length(4 * mib, 50 * mib, 8) == -(-50 * mib // 128)  # ~400 KB: 128 pieces
    assert piece_length(4 * mib, 3 * mib, 4) == MIN_PIECE  # never below 256 KiB...
    assert piece_length(64 << 10, 3 * mib, 4) == 64 << 10  # ...unless asked for smaller
    assert piece_length(4 * mib, 0, 8) == MIN_PIECE


def test_reader_streams_while_the_download_is_still_running(
    server: MirrorServer, root: Path, url: str, part: Path, sleeps: SleepRecorder
) -> None:
    # One connection, and the last piece's first answer is a 503 whose retry wait is held
    # open: everything before it must be readable while the download cannot complete.
    server.add_fault(NAME, "status", status=503, skip=1 + 12)
    sleeps.gate = threading.Event()
    data = (root / NAME).read_bytes()
    with ShardDownload(url, part, config(connections=1)) as download:
        reader = download.reader()
        digest = hashlib.sha256()
        prefix = 12 * PIECE
        while reader.tell() < prefix:
            digest.update(reader.read(100_000))
        assert reader.tell() == prefix
        assert sleeps.entered.wait(10)  # the last piece is held back...
        assert download.bytes_transferred == prefix  # ...so nothing beyond the prefix exists
        sleeps.gate.set()
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
        assert digest.hexdigest() == sha(data)
        assert reader.read(10) == b""  # EOF stays EOF
        download.finish()


def test_reader_supports_readinto_and_buffered_wrapping(url: str, root: Path, part: Path) -> None:
    with ShardDownload(url, part, config()) as download:
        buffered = io.BufferedReader(download.reader(), buffer_size=1 << 16)
        data = buffered.read()
        download.finish()
    assert data == (root / NAME).read_bytes()


def test_empty_file(server: MirrorServer, part: Path) -> None:
    with ShardDownload(server.url_for("empty.tar.gz"), part, config()) as download:
        assert download.reader().read() == b""
        assert download.finish().size == 0


# --- resume -----------------------------------------------------------------------------------


_CHILD = """
import sys
from pathlib import Path
from kinetix.config import TransferConfig
from kinetix.transfer.shard import ShardDownload
config = TransferConfig(connections=2, piece_size=int(sys.argv[3]), chunk_size=16384)
ShardDownload(sys.argv[1], Path(sys.argv[2]), config).start().finish()
"""


def test_resume_after_sigkill_fetches_only_the_missing_pieces(
    root: Path, part: Path, tmp_path: Path
) -> None:
    # Capped so the child is still busy when it is killed; no assertion depends on timing.
    with MirrorServer(root, per_connection_bps=3e6) as server:
        url = server.url_for(NAME)
        child = subprocess.Popen([sys.executable, "-c", _CHILD, url, str(part), str(PIECE)])
        state = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and child.poll() is None:
            state = ResumeState.load(state_of(part))
            if state is not None and state.done_bytes >= SIZE // 4:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the child finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = ResumeState.load(state_of(part))
        assert state is not None and 0 < state.done_bytes < SIZE
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)  # let the server finish writing into the dead child's sockets
        server.reset_stats()
        with ShardDownload(url, part, config()) as download:
            result = download.finish()
        assert server.stats.bytes_sent[NAME] == SIZE - state.done_bytes
    assert result.resumed_bytes == state.done_bytes
    assert part.read_bytes() == (root / NAME).read_bytes()


def test_failed_run_keeps_part_and_state_and_the_rerun_continues(
    server: MirrorServer, root: Path, url: str, part: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "reset", times=None, skip=5, after_bytes=1000)  # HEAD does not count
    with (
        ShardDownload(url, part, config(connections=1, retries=1)) as download,
        pytest.raises(TransferError) as caught,
    ):
        download.finish()
    message = str(caught.value)
    assert url in message and "connection" in message
    assert "partial file kept for resume" in message
    assert caught.value.code is ErrorCode.NETWORK
    state = ResumeState.load(state_of(part))
    assert state is not None and state.done == [(0, 5 * PIECE)]

    server.clear_faults()
    server.reset_stats()
    seen: list[int] = []
    with ShardDownload(url, part, config(), progress=seen.append) as download:
        result = download.finish()
    # Only whole pieces are recorded: the one cut by the resets is fetched again in full.
    assert server.stats.bytes_sent[NAME] == SIZE - 5 * PIECE
    assert result.resumed_bytes == 5 * PIECE and sum(seen) == SIZE
    assert part.read_bytes() == (root / NAME).read_bytes()


def test_rerun_of_a_complete_but_unfinished_download_transfers_nothing(
    server: MirrorServer, url: str, part: Path
) -> None:
    download = ShardDownload(url, part, config())
    assert len(download.reader().read()) == SIZE  # complete, but finish() never called
    download.abort()
    assert state_of(part).exists()
    server.reset_stats()
    with ShardDownload(url, part, config()) as again:
        assert again.reader().read()[:10] == part.read_bytes()[:10]
        result = again.finish()
    assert server.stats.bytes_sent[NAME] == 0
    assert (result.bytes_transferred, result.resumed_bytes) == (0, SIZE)


def test_abort_stops_workers_and_the_reader_raises(
    server: MirrorServer, url: str, part: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "status", status=503, skip=1 + 3)
    sleeps.gate = threading.Event()  # never released: abort must still return
    download = ShardDownload(url, part, config(connections=1))
    reader = download.reader()
    assert len(reader.read(3 * PIECE)) > 0
    assert sleeps.entered.wait(10)  # pieces 0-2 are in, piece 3 is waiting to retry
    download.abort()
    with pytest.raises(TransferError, match="aborted; partial file kept for resume"):
        while reader.read(1 << 20):
            pass
    with pytest.raises(TransferError):
        download.finish()
    assert ResumeState.load(state_of(part)).done == [(0, 3 * PIECE)]  # type: ignore[union-attr]


# --- retries and faults -------------------------------------------------------------------------


def test_retry_after_is_honoured(
    server: MirrorServer, url: str, part: Path, root: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "rate_limit", retry_after=3, skip=1)
    server.add_fault(NAME, "rate_limit", status=503, retry_after=1000)
    with ShardDownload(url, part, config(connections=1, backoff_max=60)) as download:
        download.finish()
    assert sleeps.calls == [3.0, 60.0]  # a day-long Retry-After is capped at backoff_max
    assert part.read_bytes() == (root / NAME).read_bytes()


def test_backoff_is_capped_full_jitter() -> None:
    backoff = retry.Backoff(config(backoff_base=0.5, backoff_max=4.0))
    delays = [backoff.delay(attempt) for attempt in range(10) for _ in range(20)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert max(backoff.delay(0) for _ in range(50)) <= 0.5
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry.parse_retry_after("12") == 12.0 and retry.parse_retry_after("soon") is None


def test_truncated_body_is_retried_for_the_missing_bytes_only(
    server: MirrorServer, url: str, part: Path, root: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "truncate", skip=2)  # half of the third piece, then close
    with ShardDownload(url, part, config(connections=1)) as download:
        result = download.finish()
    assert part.read_bytes() == (root / NAME).read_bytes()
    assert len(sleeps.calls) == 1
    assert server.stats.bytes_sent[NAME] == SIZE == result.bytes_transferred
    assert server.stats.range_requests == 14


def test_connection_reset_and_timeouts_are_retried(
    server: MirrorServer, url: str, part: Path, root: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "reset", skip=3, after_bytes=5000)
    server.add_fault(NAME, "slow_first_byte", skip=5, delay=2.0)
    with ShardDownload(url, part, config(connections=2, timeout=0.3)) as download:
        download.finish()
    assert part.read_bytes() == (root / NAME).read_bytes()
    assert len(sleeps.calls) == 2


def test_server_ignoring_range_falls_back_to_one_stream(
    server: MirrorServer,
    url: str,
    part: Path,
    root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # HEAD advertises ranges; the GETs then answer 200 with the whole body.
    server.add_fault(NAME, "no_range", times=None, skip=1)
    with caplog.at_level(logging.WARNING), ShardDownload(url, part, config()) as download:
        reader = download.reader()
        data = reader.read()
        result = download.finish()
    assert data == (root / NAME).read_bytes() == part.read_bytes()
    assert result.connections == 1
    assert "ignored a Range request" in caplog.text
    assert not state_of(part).exists()


def test_server_without_ranges_gets_a_single_stream_and_no_state(
    server: MirrorServer, url: str, part: Path, root: Path
) -> None:
    server.add_fault(NAME, "no_range", times=None)
    with ShardDownload(url, part, config()) as download:
        result = download.finish()
    assert part.read_bytes() == (root / NAME).read_bytes()
    assert result.connections == 1 and server.stats.requests[NAME] == 2
    assert not state_of(part).exists()


def test_no_content_length_streams_to_eof(
    server: MirrorServer, url: str, part: Path, root: Path
) -> None:
    server.add_fault(NAME, "no_content_length", times=None)
    with ShardDownload(url, part, config()) as download:
        data = download.reader().read()
        result = download.finish()
    assert data == (root / NAME).read_bytes()
    assert (result.size, result.connections) == (SIZE, 1)


def test_etag_change_between_runs_discards_partial_data(
    server: MirrorServer,
    url: str,
    part: Path,
    root: Path,
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.add_fault(NAME, "status", status=500, times=None, skip=1 + 4)
    with (
        ShardDownload(url, part, config(connections=1, retries=0)) as download,
        pytest.raises(TransferError),
    ):
        download.finish()
    assert ResumeState.load(state_of(part)).done_bytes == 4 * PIECE  # type: ignore[union-attr]

    server.clear_faults()
    replacement = os.urandom(SIZE)
    (root / NAME).write_bytes(replacement)
    os.utime(root / NAME, (1, 1))  # a different mtime even on coarse clocks
    server.reset_stats()
    with caplog.at_level(logging.WARNING), ShardDownload(url, part, config()) as download:
        result = download.finish()
    assert part.read_bytes() == replacement
    assert result.resumed_bytes == 0 and server.stats.bytes_sent[NAME] == SIZE
    assert "changed since the last run" in caplog.text


def test_etag_change_mid_download_restarts(
    server: MirrorServer,
    url: str,
    part: Path,
    root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.add_fault(NAME, "etag_change", times=None, skip=1 + 3)
    with (
        caplog.at_level(logging.WARNING),
        ShardDownload(url, part, config(connections=1)) as download,
    ):
        reader = download.reader()
        result = download.finish()  # the reader has not consumed anything: it follows along
        data = reader.read()
    assert data == (root / NAME).read_bytes() == part.read_bytes()
    assert result.etag is not None and result.etag.endswith('-changed"')
    assert "changed on the server" in caplog.text
    # HEAD, 3 pieces, the piece that saw the new ETag; then HEAD and all 13 pieces again.
    assert server.stats.requests[NAME] == 19 and server.stats.range_requests == 17


def test_reader_that_consumed_old_bytes_fails_when_the_remote_changes(
    server: MirrorServer, url: str, part: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "status", status=503, skip=1 + 3)
    server.add_fault(NAME, "etag_change", times=None)  # from the retry of the 503 on
    sleeps.gate = threading.Event()
    with ShardDownload(url, part, config(connections=1)) as download:
        reader = download.reader()
        while reader.tell() < PIECE:
            reader.read(PIECE - reader.tell())
        sleeps.gate.set()
        with pytest.raises(IntegrityError, match="changed on the server after"):
            while reader.read(1 << 20):
                pass
        download.finish()  # the download itself restarted and completed


def test_404_is_not_retried(server: MirrorServer, part: Path, sleeps: SleepRecorder) -> None:
    url = server.url_for("600/train/gone.tar.gz")
    with ShardDownload(url, part, config()) as download:
        with pytest.raises(HTTPStatusError) as caught:
            download.reader().read()
        with pytest.raises(HTTPStatusError):
            download.finish()
    assert caught.value.code is ErrorCode.HTTP_404
    assert sleeps.calls == [] and server.stats.total_requests == 1


def test_other_4xx_during_pieces_is_not_retried(
    server: MirrorServer, url: str, part: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "status", status=403, skip=1)
    with (
        ShardDownload(url, part, config(connections=1)) as download,
        pytest.raises(HTTPStatusError) as caught,
    ):
        download.finish()
    assert caught.value.status == 403 and sleeps.calls == []


@pytest.mark.parametrize("skip", [0, 1], ids=["head", "get"])
def test_html_answer_is_not_an_archive(
    server: MirrorServer, url: str, part: Path, skip: int
) -> None:
    server.add_fault(NAME, "html", times=None, skip=skip)
    with ShardDownload(url, part, config()) as download, pytest.raises(TransferError) as caught:
        download.finish()
    assert caught.value.code is ErrorCode.NOT_AN_ARCHIVE
    assert url in str(caught.value) and "text/html" in str(caught.value)


def test_retries_exhausted_names_url_and_keeps_the_part(
    server: MirrorServer, url: str, part: Path, sleeps: SleepRecorder
) -> None:
    server.add_fault(NAME, "status", status=503, times=None, skip=1 + 2)
    with ShardDownload(url, part, config(connections=1, retries=2)) as download:
        reader = download.reader()
        with pytest.raises(TransferError) as caught:
            reader.read()
    message = str(caught.value)
    assert url in message and "HTTP 503" in message and "gave up after 3 attempts" in message
    assert "partial file kept for resume" in message
    assert caught.value.code is ErrorCode.HTTP_ERROR
    assert len(sleeps.calls) == 2
    assert part.exists() and state_of(part).exists()


def test_loopback_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert proxy_for("http://127.0.0.1:8080/x") is None
    assert proxy_for("https://s3.amazonaws.com/kinetics/x") == "http://proxy.example:3128"
    assert proxy_for("https://internal.example/x") is None
