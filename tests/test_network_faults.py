"""Dead networks and hostile servers: clear, fast failures; stalls and trickles are bounded."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fakes import SleepRecorder

from kinetix.cli.download import config_from
from kinetix.cli.main import build_parser
from kinetix.config import TransferConfig
from kinetix.errors import ConfigError, ConnectError, StallError
from kinetix.synthetic.server import MirrorServer
from kinetix.transfer.connection import RateWatch
from kinetix.transfer.http import fetch_file
from kinetix.transfer.shard import ShardDownload

NAME = "400/val/part_0.tar.gz"
SMALL = "400/annotations/small.csv"
SIZE = 600 << 10


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MirrorServer]:
    root = tmp_path / "mirror"
    (root / "400/val").mkdir(parents=True)
    (root / "400/annotations").mkdir(parents=True)
    (root / NAME).write_bytes(os.urandom(SIZE))
    (root / SMALL).write_bytes(b"label,youtube_id\n" + b"abseiling,abcdefghijk\n" * 200)
    with MirrorServer(root) as server:
        yield server


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- no DNS, refused connections --------------------------------------------------------------


def test_unresolvable_host_fails_fast_and_says_so(tmp_path: Path, sleeps: SleepRecorder) -> None:
    # urllib3 2.x's NameResolutionError is a ConnectTimeoutError: it used to read "no data for
    # 60s (timed out)" after nine attempts.
    url = "http://kinetix-test.invalid/kinetics/400/annotations/val.csv"
    with pytest.raises(ConnectError) as caught:
        fetch_file(url, tmp_path / "val.csv", TransferConfig())  # the default 8 retries
    message = str(caught.value)
    assert "cannot resolve host kinetix-test.invalid" in message
    assert "timed out" not in message
    assert "gave up after 3 attempts" in message
    assert len(sleeps.calls) == 2 and max(sleeps.calls) <= 1.0
    for hint in ("--mirror", "--offline", "kinetix demo"):
        assert hint in message
    assert not (tmp_path / "val.csv").exists()


def test_refused_connection_names_host_and_port(tmp_path: Path, sleeps: SleepRecorder) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/kinetics/{NAME}"
    with (
        pytest.raises(ConnectError) as caught,
        ShardDownload(url, tmp_path / "p.part", TransferConfig()) as download,
    ):
        download.finish()
    message = str(caught.value)
    assert f"connection refused by 127.0.0.1:{port}" in message
    assert "gave up after 3 attempts" in message and "--mirror" in message
    assert len(sleeps.calls) == 2


def test_retry_log_names_the_request_once(
    server: MirrorServer, tmp_path: Path, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    # -v used to print "GET url: GET url: ..." for every retry.
    server.add_fault(SMALL, "status", status=503)
    server.add_fault(SMALL, "reset")  # the second request, once the 503 healed
    url = server.url_for(SMALL)
    with caplog.at_level(logging.INFO, logger="kinetix.transfer.retry"):
        fetch_file(url, tmp_path / "small.csv", TransferConfig())
    retries = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert len(retries) == 2
    for line in retries:
        assert line.count(url) == 1, line
    assert "HTTP 503" in retries[0] and "connection reset" in retries[1]


def test_download_with_a_dead_mirror_is_one_clear_line(
    tmp_path: Path, sleeps: SleepRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    from kinetix.cli.main import main

    port = closed_port()
    code = main(
        ["download", "k400", "--split", "val", "--root", str(tmp_path / "root"),
         "--mirror", f"http://127.0.0.1:{port}/", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1, err
    assert f"connection refused by 127.0.0.1:{port}" in err[0]
    assert "kinetix demo" in err[0]
    assert len(sleeps.calls) == 2  # one request, retried twice; not nine attempts


# --- stalls and trickles ------------------------------------------------------------------------


def fast(**overrides: object) -> TransferConfig:
    settings: dict[str, object] = {
        "connections": 2,
        "piece_size": 256 << 10,
        "chunk_size": 64 << 10,
        "timeout": 0.5,
    }
    settings.update(overrides)
    return TransferConfig(**settings)  # type: ignore[arg-type]


def test_server_hanging_after_its_headers_is_a_bounded_stall(
    server: MirrorServer, tmp_path: Path, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to be retried the full budget at 60 s a time (624 s), silently.
    server.add_fault(NAME, "stall", times=None, after_bytes=1000)
    url = server.url_for(NAME)
    download = ShardDownload(url, tmp_path / "p.part", fast())
    with caplog.at_level(logging.WARNING), pytest.raises(StallError) as caught, download:
        download.finish()
    assert "stalled: no data for 0.5s" in str(caught.value)
    assert "gave up after 3 attempts" in str(caught.value)
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "stalled" in r.getMessage()
    ]
    assert warnings, "a handled stall must be visible at WARNING"
    assert (tmp_path / "p.part").exists()  # kept for resume


def test_trickling_server_is_dropped_and_the_retry_completes(
    server: MirrorServer, tmp_path: Path, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    # 50 bytes/s never times out a socket read; before the minimum-rate rule this transfer
    # crawled along (hours for a real shard) without a word.
    server.add_fault(NAME, "trickle", rate=50)
    part = tmp_path / "p.part"
    url = server.url_for(NAME)
    with caplog.at_level(logging.WARNING), ShardDownload(url, part, fast(timeout=1.0)) as download:
        result = download.finish()
    assert part.read_bytes() == (server.root / NAME).read_bytes()
    assert result.size == SIZE
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("stalled" in line and "below the minimum of 1 KB/s" in line for line in lines)


def test_rate_watch_allows_slow_but_steady_and_catches_a_trickle() -> None:
    now = [0.0]
    config = TransferConfig(timeout=30, min_rate=1024)
    steady = RateWatch(config, clock=lambda: now[0])
    for _ in range(100):  # 2 KB/s for 100 s
        now[0] += 1
        steady.add(2048, "GET u", "u")
    trickle = RateWatch(config, clock=lambda: now[0])
    with pytest.raises(StallError, match="below the minimum of 1 KB/s"):
        for _ in range(31):
            now[0] += 1
            trickle.add(1, "GET u", "u")


def test_timeout_and_min_rate_are_settable_from_the_cli() -> None:
    args = build_parser().parse_args(
        ["download", "k400", "--split", "val", "--timeout", "7.5", "--min-rate", "4K"]
    )
    transfer = config_from(args).transfer
    assert (transfer.timeout, transfer.min_rate) == (7.5, 4096)
    defaults = config_from(build_parser().parse_args(["download", "k400", "--split", "val"]))
    assert defaults.transfer == TransferConfig()
    with pytest.raises(ConfigError, match="--timeout must be > 0"):
        TransferConfig(timeout=0)
