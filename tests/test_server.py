"""The mirror's HTTP server: Range, validators, encoded names, caps and every fault kind."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinetix.catalog.releases import join_url
from kinetix.errors import ConfigError
from kinetix.synthetic.server import FAULT_KINDS, MirrorServer, TokenBucket

SIZE = 200_000
ODD_NAME = "600/train/massaging person's head (kid).tar.gz"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    (root / "600/train").mkdir(parents=True)
    (root / "data.bin").write_bytes(os.urandom(SIZE))
    (root / ODD_NAME).write_bytes(b"shard bytes " * 100)
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


@pytest.fixture
def server(root: Path) -> Iterator[MirrorServer]:
    with MirrorServer(root) as server:
        yield server


class Answer:
    def __init__(self, response: http.client.HTTPResponse, body: bytes):
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = body


def request(
    server: MirrorServer,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    connection: http.client.HTTPConnection | None = None,
) -> Answer:
    conn = connection or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    answer = Answer(response, response.read())
    if connection is None:
        conn.close()
    return answer


def test_whole_file_with_validators(server: MirrorServer, root: Path) -> None:
    answer = request(server, "/data.bin")
    assert answer.status == 200
    assert answer.body == (root / "data.bin").read_bytes()
    assert answer.headers["content-length"] == str(SIZE)
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["etag"].startswith('"') and answer.headers["etag"].endswith('"')
    assert answer.headers["last-modified"].endswith("GMT")
    assert server.url.endswith("/") and server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=-50", SIZE - 50, SIZE - 1),
        ("bytes=150000-999999999", 150000, SIZE - 1),
        ("bytes=-999999999", 0, SIZE - 1),
    ],
)
def test_range_forms(server: MirrorServer, root: Path, header: str, first: int, last: int) -> None:
    answer = request(server, "/data.bin", {"Range": header})
    assert answer.status == 206
    assert answer.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert answer.body == (root / "data.bin").read_bytes()[first : last + 1]
    assert answer.headers["content-length"] == str(last - first + 1)
    assert server.stats.range_requests == 1


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_unsatisfiable_range_is_416(server: MirrorServer, header: str) -> None:
    answer = request(server, "/data.bin", {"Range": header})
    assert answer.status == 416
    assert answer.headers["content-range"] == f"bytes */{SIZE}"


def test_malformed_or_multiple_ranges_get_the_whole_file(server: MirrorServer) -> None:
    assert request(server, "/data.bin", {"Range": "bytes=0-1,5-9"}).status == 200
    assert request(server, "/data.bin", {"Range": "items=0-1"}).status == 200


def test_head_has_headers_and_no_body(server: MirrorServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    head = request(server, "/data.bin", method="HEAD", connection=conn)
    get = request(server, "/data.bin", connection=conn)  # same connection: HEAD left no body
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(SIZE)
    assert head.headers["etag"] == get.headers["etag"]
    assert server.stats.bytes_sent["data.bin"] == SIZE


def test_etag_changes_when_the_file_is_replaced(server: MirrorServer, root: Path) -> None:
    before = request(server, "/data.bin", method="HEAD").headers["etag"]
    path = root / "data.bin"
    path.write_bytes(os.urandom(SIZE))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = request(server, "/data.bin", method="HEAD").headers["etag"]
    assert after != before


def test_if_range_with_a_stale_etag_sends_the_whole_file(server: MirrorServer) -> None:
    etag = request(server, "/data.bin", method="HEAD").headers["etag"]
    fresh = request(server, "/data.bin", {"Range": "bytes=0-9", "If-Range": etag})
    stale = request(server, "/data.bin", {"Range": "bytes=0-9", "If-Range": '"old"'})
    assert (fresh.status, len(fresh.body)) == (206, 10)
    assert (stale.status, len(stale.body)) == (200, SIZE)


def test_percent_encoded_names_with_spaces_parentheses_and_apostrophes(
    server: MirrorServer, root: Path
) -> None:
    url = join_url(server.url, ODD_NAME)
    assert "%20" in url and "'" not in url.split("/", 3)[3]
    path = "/" + url.split("/", 3)[3]
    answer = request(server, path)
    assert answer.status == 200
    assert answer.body == (root / ODD_NAME).read_bytes()
    assert server.stats.requests[ODD_NAME] == 1
    assert request(server, "/" + server.url_for(ODD_NAME).split("/", 3)[3]).status == 200


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/600/../../secret.txt"])
def test_path_traversal_is_refused(server: MirrorServer, path: str) -> None:
    answer = request(server, path)
    assert answer.status == 403
    assert b"TOP SECRET" not in answer.body


def test_symlink_out_of_the_root_is_refused(server: MirrorServer, root: Path) -> None:
    (root / "escape.txt").symlink_to(root.parent / "secret.txt")
    assert request(server, "/escape.txt").status == 403


def test_missing_file_and_directory_are_404(server: MirrorServer) -> None:
    assert request(server, "/nope.tar.gz").status == 404
    assert request(server, "/600/train").status == 404


def test_keep_alive_serves_many_requests_on_one_connection(server: MirrorServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for first in range(0, 5000, 1000):
        answer = request(
            server, "/data.bin", {"Range": f"bytes={first}-{first + 999}"}, connection=conn
        )
        assert answer.status == 206
    conn.close()
    stats = server.stats
    assert stats.connections == 1
    assert stats.requests["data.bin"] == 5
    assert stats.bytes_sent["data.bin"] == 5000


def test_token_bucket_charges_debt_at_the_configured_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(1000.0, burst=100.0, clock=lambda: now[0])
    assert bucket.reserve(100) == 0.0  # the burst is free
    assert bucket.reserve(500) == pytest.approx(0.5)
    assert bucket.reserve(500) == pytest.approx(1.0)  # queued behind the first debt
    now[0] = 1.0
    assert bucket.reserve(0) == pytest.approx(0.0)  # debt paid off by elapsed time
    now[0] = 100.0
    assert bucket.reserve(100) == 0.0  # idle time refills only up to the burst
    assert bucket.reserve(1) > 0


@pytest.mark.parametrize("caps", [{"per_connection_bps": 1e6}, {"total_bps": 1e6}])
def test_bandwidth_caps_throttle_the_body(root: Path, caps: dict[str, float]) -> None:
    with MirrorServer(root, **caps) as server:
        started = time.monotonic()
        answer = request(server, "/data.bin")
        elapsed = time.monotonic() - started
        stats = server.stats
    assert answer.body == (root / "data.bin").read_bytes()
    # 200 kB at 1 MB/s with 64 kB of credit: the body cannot arrive in under ~0.136 s. The bound
    # is on the delivery, not on the server's own waiting, which a loaded machine shortens (the
    # bucket refills while the server thread is descheduled).
    assert elapsed >= 0.12
    assert stats.throttle_seconds > 0
    with MirrorServer(root) as uncapped:
        request(uncapped, "/data.bin")
        assert uncapped.stats.throttle_seconds == 0.0


# --- faults ---------------------------------------------------------------------------------


def test_status_fault_heals_after_times(server: MirrorServer) -> None:
    server.add_fault("data.bin", "status", status=503, times=2)
    assert [request(server, "/data.bin").status for _ in range(3)] == [503, 503, 200]


def test_fault_forever_skip_and_glob(server: MirrorServer) -> None:
    server.add_fault("600/*/*.tar.gz", "status", status=404, times=None, skip=1)
    odd = "/" + server.url_for(ODD_NAME).split("/", 3)[3]
    assert [request(server, odd).status for _ in range(3)] == [200, 404, 404]
    assert request(server, "/data.bin").status == 200  # pattern does not match
    server.clear_faults()
    assert request(server, odd).status == 200


def test_rate_limit_fault_sends_retry_after(server: MirrorServer) -> None:
    server.add_fault("data.bin", "rate_limit", retry_after=7)
    answer = request(server, "/data.bin")
    assert answer.status == 429
    assert answer.headers["retry-after"] == "7"


def test_reset_fault_cuts_the_connection(server: MirrorServer) -> None:
    server.add_fault("data.bin", "reset", after_bytes=1000)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        request(server, "/data.bin")
    assert server.stats.bytes_sent["data.bin"] == 1000
    assert request(server, "/data.bin").status == 200  # healed


def test_head_does_not_consume_body_faults(server: MirrorServer) -> None:
    server.add_fault("data.bin", "truncate", after_bytes=10)
    assert request(server, "/data.bin", method="HEAD").status == 200
    with pytest.raises(http.client.IncompleteRead):
        request(server, "/data.bin")


def test_truncate_fault_sends_fewer_bytes_than_promised(server: MirrorServer) -> None:
    server.add_fault("data.bin", "truncate")
    with pytest.raises(http.client.IncompleteRead) as caught:
        request(server, "/data.bin")
    assert len(caught.value.partial) == SIZE // 2


def test_slow_first_byte_fault_still_answers(server: MirrorServer) -> None:
    fault = server.add_fault("data.bin", "slow_first_byte", delay=0.05)
    assert request(server, "/data.bin").status == 200
    assert fault.hits == 1 and not fault.active


def test_no_range_fault_ignores_range(server: MirrorServer) -> None:
    server.add_fault("data.bin", "no_range", times=None)
    answer = request(server, "/data.bin", {"Range": "bytes=0-9"})
    assert answer.status == 200 and len(answer.body) == SIZE
    assert "accept-ranges" not in answer.headers


def test_no_content_length_fault_closes_to_end_the_body(server: MirrorServer, root: Path) -> None:
    server.add_fault("data.bin", "no_content_length")
    answer = request(server, "/data.bin")
    assert "content-length" not in answer.headers
    assert answer.headers["connection"] == "close"
    assert answer.body == (root / "data.bin").read_bytes()


def test_html_fault_answers_an_error_page(server: MirrorServer) -> None:
    server.add_fault("*.bin", "html")
    answer = request(server, "/data.bin")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.body.startswith(b"<html>")


def test_junk_fault_answers_random_bytes_under_the_files_type(
    server: MirrorServer, root: Path
) -> None:
    server.add_fault("*.bin", "junk", times=2)
    answer = request(server, "/data.bin")
    assert answer.status == 200 and len(answer.body) == SIZE
    assert answer.body != (root / "data.bin").read_bytes()
    assert request(server, "/data.bin").body == answer.body  # the same junk every time
    assert request(server, "/data.bin").body == (root / "data.bin").read_bytes()  # healed


def test_etag_change_fault_reports_another_etag(server: MirrorServer) -> None:
    real = request(server, "/data.bin", method="HEAD").headers["etag"]
    server.add_fault("data.bin", "etag_change")
    changed = request(server, "/data.bin", method="HEAD").headers["etag"]
    assert changed != real
    server.add_fault("data.bin", "etag_change", etag='"v2"')
    assert request(server, "/data.bin").headers["etag"] == '"v2"'


def test_etags_are_the_md5_of_the_body_like_s3(server: MirrorServer, root: Path) -> None:
    digest = hashlib.md5((root / "data.bin").read_bytes()).hexdigest()
    assert request(server, "/data.bin", method="HEAD").headers["etag"] == f'"{digest}"'
    assert request(server, "/data.bin", {"Range": "bytes=0-9"}).headers["etag"] == f'"{digest}"'
    with MirrorServer(root, md5_etags=False) as nginx_like:
        assert "-" in request(nginx_like, "/data.bin").headers["etag"]


def test_flip_byte_fault_damages_one_byte_and_keeps_the_etag(server: MirrorServer, root: Path):
    good = (root / "data.bin").read_bytes()
    etag = request(server, "/data.bin", method="HEAD").headers["etag"]
    server.add_fault("data.bin", "flip_byte", offset=1234, times=2)
    whole = request(server, "/data.bin")
    assert whole.headers["etag"] == etag and len(whole.body) == len(good)
    assert [i for i in range(len(good)) if whole.body[i] != good[i]] == [1234]
    ranged = request(server, "/data.bin", {"Range": "bytes=1000-1999"})
    assert ranged.body[234] == good[1234] ^ 0xFF and ranged.body[:234] == good[1000:1234]
    assert request(server, "/data.bin").body == good  # healed


def test_unknown_fault_kind_lists_valid_ones(server: MirrorServer) -> None:
    with pytest.raises(ValueError, match="valid kinds are reset"):
        server.add_fault("*", "explode")
    for kind in FAULT_KINDS:  # every documented kind is accepted
        server.add_fault("never-requested", kind)


def test_serve_forever_blocks_until_stopped(root: Path) -> None:
    server = MirrorServer(root)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    while not server.port:
        time.sleep(0.01)
    while serving.is_alive() and request(server, "/data.bin", method="HEAD").status != 200:
        time.sleep(0.01)
    assert serving.is_alive()
    server.stop()
    serving.join(10)
    assert not serving.is_alive()


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        MirrorServer(tmp_path / "missing")


def test_stop_cuts_idle_keep_alive_connections(root: Path) -> None:
    server = MirrorServer(root).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert request(server, "/data.bin", connection=conn).status == 200
    server.stop()  # must not wait for the idle connection
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        request(server, "/data.bin", connection=conn)
