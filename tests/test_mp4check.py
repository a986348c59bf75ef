"""The MP4 structure check the extractor runs on every member: whole files pass, damaged ones
say what is wrong, bytes that are not an MP4 are not judged."""

from __future__ import annotations

import struct
import tarfile

import pytest

from kinetix.synthetic.mirror import MirrorIndex
from kinetix.transfer.mp4check import Mp4Structure


def check(data: bytes, step: int = 1 << 20) -> str | None:
    walker = Mp4Structure()
    for i in range(0, len(data), step):
        walker.feed(memoryview(data)[i : i + step])
    problem = walker.problem()
    return None if problem is None else problem.reason


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


@pytest.fixture(scope="module")
def clip(mirror: MirrorIndex) -> bytes:
    split = mirror.split("k400", "val")
    with tarfile.open(mirror.path(split.shards[0])) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".mp4") and "._" not in m.name)
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_a_whole_clip_passes_in_any_chunking(clip: bytes, step: int) -> None:
    assert check(clip, step) is None


@pytest.mark.parametrize("fraction", [0.01, 0.4, 0.9, 0.999])
def test_a_clip_cut_short_is_truncated(clip: bytes, fraction: float) -> None:
    problem = check(clip[: int(len(clip) * fraction)], 333)
    assert problem is not None and "truncated" in problem


def test_empty_tiny_and_indexless_files() -> None:
    assert check(b"") == "it is empty (0 bytes)"
    assert "too short" in (check(b"\0\0\0") or "")
    no_moov = box(b"ftyp", b"isom\0\0\2\0") + box(b"mdat", bytes(100))
    assert "no 'moov'" in (check(no_moov, 5) or "")
    garbage = box(b"ftyp", b"isom\0\0\2\0") + b"\x00\x00\x00\x10\xff\xfe\x00\x01" + bytes(8)
    assert "unreadable" in (check(garbage) or "")
    tiny_box = box(b"ftyp", b"isom") + struct.pack(">I4s", 4, b"moov")
    assert "size 4" in (check(tiny_box) or "")


def test_large_sizes_and_a_last_box_running_to_the_end() -> None:
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 50) + bytes(50)
    data = box(b"ftyp", b"isom") + box(b"moov", bytes(20)) + large
    assert check(data, 3) is None
    assert "truncated" in (check(data[:-1], 3) or "")
    to_end = box(b"ftyp", b"isom") + box(b"moov", bytes(20)) + struct.pack(">I4s", 0, b"mdat")
    assert check(to_end + bytes(1000), 11) is None


def test_bytes_that_are_no_mp4_are_not_judged() -> None:
    walker = Mp4Structure()
    walker.feed(b"\x1aE\xdf\xa3" + bytes(100))  # a Matroska/WebM header
    assert walker.problem() is None and walker.is_mp4 is False
