"""Streaming extraction: every CVDF shape and anomaly, unsafe members refused, all-or-nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import tarfile
import tracemalloc
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from kinetix.errors import ArchiveError, ConfigError, ErrorCode, TransferError
from kinetix.store.leftovers import remove_temps
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.transfer.extract import (
    CHUNK_SIZE,
    ExtractPlan,
    extract_stream,
    temp_path,
)
from kinetix.transfer.integrity import Integrity, md5_from_etag

KEY_A = "-abcdefghij_000010_000020"  # starts with "-": never an option to anything
KEY_B = "xyzXYZ01234_000000_000010"
KEY_C = "Q_R-s_t-u_v_000100_000110"


class ChunkedReader(io.RawIOBase):
    """Gives back at most the next chunk size per read, like a download still in progress."""

    def __init__(
        self, data: bytes, sizes: Iterable[int] = (CHUNK_SIZE,), fail_at: int | None = None
    ):
        self._data = memoryview(data)
        self._sizes = itertools.cycle(sizes)
        self._pos = 0
        self._fail_at = fail_at
        self.requested: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.requested.append(size)
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise TransferError("connection reset by peer", url="http://127.0.0.1/x")
        take = min(size, next(self._sizes))
        if self._fail_at is not None:
            take = min(take, self._fail_at - self._pos) or take
        chunk = self._data[self._pos : self._pos + take].tobytes()
        self._pos += len(chunk)
        return chunk


def payload(key: str, size: int = 3000) -> bytes:
    return hashlib.sha256(key.encode()).digest() * (size // 32) + key.encode()


def make_tar(
    entries: Iterable[tuple[str, bytes] | tarfile.TarInfo],
    *,
    fmt: int = tarfile.GNU_FORMAT,
    compress: bool = True,
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, data = entry
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def plan_for(root: Path, *keys: str) -> ExtractPlan:
    return ExtractPlan(root, {k: root / "val" / "cls" / f"{k}.mp4" for k in keys})


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def run(data: bytes, plan: ExtractPlan, sizes: Iterable[int] = (CHUNK_SIZE,), name: str = "s"):
    return extract_stream(ChunkedReader(data, sizes), plan, name=name)


# --- the mirror's real shapes -------------------------------------------------------------------


def test_k400_parts_every_anomaly(mirror: MirrorIndex, tmp_path: Path) -> None:
    """Class-mixed parts, the plain tar under a deep prefix, AppleDouble, corrupted members."""
    split = mirror.split("k400", "val")
    wanted = [c for c in split.present if c.shard != split.shards[1]]  # part_1 is not wanted
    plan = ExtractPlan(
        tmp_path, {c.key: tmp_path / "val" / (c.clip.label or "") / f"{c.key}.mp4" for c in wanted}
    )
    reports = [extract_stream(mirror.path(s).open("rb"), plan, name=s) for s in split.shards]
    assert [r.format for r in reports] == ["gzip", "gzip", "tar"]
    assert reports[0].skipped_appledouble and all(
        "/._" in n for n in reports[0].skipped_appledouble
    )
    unwanted = {c.key for c in split.present if c.shard == split.shards[1]}
    assert {Path(n).stem for n in reports[1].skipped_unwanted} == unwanted  # not written
    assert set(reports[1].members) == unwanted and not reports[1].written
    written = {k: v for r in reports for k, v in r.written.items()}
    assert set(written) == set(plan.wanted)
    for c in wanted:
        got = written[c.key]
        assert got.path == tmp_path / "val" / (c.clip.label or "") / f"{c.key}.mp4"
        assert got.path.stat().st_size == got.size
        if c.corrupted:  # the truncated copy CVDF ships inside the part
            assert got.sha256 != c.sha256 and got.size < (c.size or 0)
        else:
            assert got.sha256 == c.sha256 == hashlib.sha256(got.path.read_bytes()).hexdigest()
    assert all(r.end_marker for r in reports)
    assert len(files_under(tmp_path)) == len(wanted)  # no temps, no AppleDouble, no extras


def test_corrupted_train_members_are_refused_never_placed(mirror: MirrorIndex, tmp_path: Path):
    """K400 train's truncated copies are not whole MP4s: refused (truncated), never written."""
    split = mirror.split("k400", "train")
    assert split.corrupted, "the fixture plants corrupted train clips"
    plan = ExtractPlan(tmp_path, {c.key: tmp_path / f"{c.key}.mp4" for c in split.present})
    reports = [extract_stream(mirror.path(s).open("rb"), plan, name=s) for s in split.shards]
    refused = {k: v for r in reports for k, v in r.refused.items()}
    written = {k: v for r in reports for k, v in r.written.items()}
    assert set(refused) == set(split.corrupted)
    assert {code for code, _ in refused.values()} == {ErrorCode.TRUNCATED}
    assert all("truncated" in reason for _, reason in refused.values())
    assert set(written) == {c.key for c in split.present if not c.corrupted}
    assert all(written[k].sha256 == split.clips[k].sha256 for k in written)
    assert len(files_under(tmp_path)) == len(written)  # no temp of a refused member is left


def test_replacement_copies_replace_a_different_file_and_keep_an_identical_one(
    mirror: MirrorIndex, tmp_path: Path
) -> None:
    split = mirror.split("k400", "train")
    corrupted = [split.clips[k] for k in split.corrupted]
    dest = {c.key: tmp_path / "train" / f"{c.key}.mp4" for c in corrupted}
    bad, good = corrupted
    dest[bad.key].parent.mkdir(parents=True)
    dest[bad.key].write_bytes(b"what an older kinetix placed from the part")
    replacement = mirror.path(mirror.replacement["k400"])
    first = extract_stream(replacement.open("rb"), ExtractPlan(tmp_path, dest), name="repl")
    assert set(first.written) == set(dest) and not first.kept_existing
    for c in corrupted:
        assert hashlib.sha256(dest[c.key].read_bytes()).hexdigest() == c.sha256
    again = extract_stream(replacement.open("rb"), ExtractPlan(tmp_path, dest), name="repl")
    assert set(again.kept_existing) == set(dest) and not again.written
    assert again.kept_existing[good.key].sha256 == good.sha256
    assert len(files_under(tmp_path)) == 2


def test_k600_and_k700_class_tars_map_by_file_stem(mirror: MirrorIndex, tmp_path: Path) -> None:
    for release in ("k600", "k700-2020"):
        split = mirror.split(release, "val")
        root = tmp_path / release
        plan = ExtractPlan(root, {c.key: root / f"{c.key}.mp4" for c in split.present})
        for shard in split.shards:
            report = extract_stream(mirror.path(shard).open("rb"), plan, name=shard)
            for key, got in report.written.items():
                assert got.sha256 == split.clips[key].sha256
        assert len(files_under(tmp_path / release)) == len(split.present)


# --- formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("compress", [True, False])
def test_tar_formats_and_prefixes(tmp_path: Path, fmt: int, compress: bool) -> None:
    deep = "home/ubuntu/" + "x" * 40 + "/kinetics/train/"  # > 100 chars with the key
    data = make_tar(
        [(f"./{KEY_A}.mp4", payload(KEY_A)), (f"{deep}{KEY_B}.mp4", payload(KEY_B)),
         (f"air drumming/{KEY_C}.mp4", payload(KEY_C))],
        fmt=fmt, compress=compress,
    )  # fmt: skip
    report = run(data, plan_for(tmp_path, KEY_A, KEY_B, KEY_C))
    assert report.format == ("gzip" if compress else "tar")
    assert set(report.written) == {KEY_A, KEY_B, KEY_C}
    for key in (KEY_A, KEY_B, KEY_C):
        assert (tmp_path / "val" / "cls" / f"{key}.mp4").read_bytes() == payload(key)


@pytest.mark.parametrize(
    ("sizes", "clip_size"),
    [((1,), 600), ((7, 511, 513, 3), 70_000), ((4096, 1), 70_000), ((CHUNK_SIZE,), 70_000)],
)
def test_odd_chunk_sizes_give_the_same_result(
    tmp_path: Path, sizes: tuple[int, ...], clip_size: int
) -> None:
    data = make_tar([(f"./{k}.mp4", payload(k, clip_size)) for k in (KEY_A, KEY_B, KEY_C)])
    report = run(data, plan_for(tmp_path, KEY_A, KEY_C), sizes)
    assert set(report.written) == {KEY_A, KEY_C}
    assert report.skipped_unwanted == [f"./{KEY_B}.mp4"]
    assert report.members == {k: len(payload(k, clip_size)) for k in (KEY_A, KEY_B, KEY_C)}
    for key in (KEY_A, KEY_C):
        written = (tmp_path / "val/cls" / f"{key}.mp4").read_bytes()
        assert written == payload(key, clip_size)
        assert report.written[key].sha256 == hashlib.sha256(written).hexdigest()
    assert report.compressed_bytes == len(data) and report.end_marker


def test_multi_member_gzip_and_trailing_zeros(tmp_path: Path) -> None:
    raw = make_tar(
        [(f"./{KEY_A}.mp4", payload(KEY_A)), (f"./{KEY_B}.mp4", payload(KEY_B))], compress=False
    )
    cut = 1536
    data = gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]) + bytes(1000)
    report = run(data, plan_for(tmp_path, KEY_A, KEY_B), (333,))
    assert set(report.written) == {KEY_A, KEY_B}
    garbage = gzip.compress(raw) + b"trailing junk"
    with pytest.raises(ArchiveError, match="unexpected data after gzip member 1"):
        run(garbage, plan_for(tmp_path / "g", KEY_A))
    assert not (tmp_path / "g").exists() or not files_under(tmp_path / "g")


def test_clean_eof_without_end_blocks_is_accepted(tmp_path: Path) -> None:
    raw = make_tar([(f"./{KEY_A}.mp4", b"x" * 1024)], compress=False)
    body = 512 + 1024  # header + data (already a multiple of 512)
    report = run(raw[:body], plan_for(tmp_path, KEY_A))
    assert set(report.written) == {KEY_A} and not report.end_marker


# --- safety -------------------------------------------------------------------------------------


def special(name: str, kind: bytes, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def test_unsafe_members_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("untouched")
    keys = [f"{c * 11}_000000_000010" for c in "abcdefgh"]
    data = make_tar(
        [
            (f"/{outside}/{keys[0]}.mp4", b"absolute"),
            (f"../{keys[1]}.mp4", b"dotdot"),
            (f"./a/../../{keys[2]}.mp4", b"dotdot inside"),
            special(f"./{keys[3]}.mp4", tarfile.SYMTYPE, linkname=str(victim)),
            special(f"./{keys[4]}.mp4", tarfile.LNKTYPE, linkname=str(victim)),
            special(f"./{keys[5]}.mp4", tarfile.CHRTYPE, devmajor=1, devminor=3),
            special(f"./{keys[6]}.mp4", tarfile.BLKTYPE, devmajor=8, devminor=0),
            special(f"./{keys[7]}.mp4", tarfile.FIFOTYPE),
            (f"./{KEY_A}.mp4", payload(KEY_A)),
        ]
    )
    report = run(data, plan_for(root, *keys, KEY_A))
    reasons = dict(report.skipped_unsafe)
    assert [Path(n).stem for n, _ in report.skipped_unsafe] == keys
    assert set(reasons.values()) == {
        "absolute path", "'..' in path", "symlink", "hard link",
        "character device", "block device", "fifo",
    }  # fmt: skip
    assert set(report.written) == {KEY_A} and not report.not_found
    # recorded as refused for being unsafe, not as absent from the shard
    assert set(report.refused) == set(keys)
    assert {code for code, _ in report.refused.values()} == {ErrorCode.UNSAFE_MEMBER}
    assert "'..' in path" in report.refused[keys[1]][1]
    assert files_under(root) == [f"val/cls/{KEY_A}.mp4"]
    assert files_under(outside) == ["victim.txt"] and victim.read_text() == "untouched"


def test_a_symlink_planted_at_the_temp_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    plan = plan_for(tmp_path / "root", KEY_A)
    temp = temp_path(plan.wanted[KEY_A])
    temp.parent.mkdir(parents=True)
    temp.symlink_to(victim)
    run(make_tar([(f"./{KEY_A}.mp4", payload(KEY_A))]), plan)
    assert victim.read_text() == "untouched"
    assert plan.wanted[KEY_A].read_bytes() == payload(KEY_A) and not temp.exists()


def test_plan_destinations_must_stay_under_the_root(tmp_path: Path) -> None:
    escaping = ExtractPlan(tmp_path / "root", {KEY_A: tmp_path / "root" / ".." / "elsewhere.mp4"})
    with pytest.raises(ConfigError, match="outside the root"):
        escaping.destination(KEY_A)
    with pytest.raises(ConfigError, match="outside the root"):
        ExtractPlan(tmp_path / "root", {KEY_A: tmp_path / "elsewhere.mp4"}).destination(KEY_A)
    # Checked when the member arrives (plans are resolved lazily): nothing lands outside.
    with pytest.raises(ConfigError, match="outside the root"):
        run(make_tar([(f"./{KEY_A}.mp4", payload(KEY_A))]), escaping)
    assert not (tmp_path / "elsewhere.mp4").exists()
    assert ExtractPlan(tmp_path, {KEY_A: tmp_path / "x.mp4"}).destination("not-wanted") is None


def test_a_relative_root_and_destinations_built_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("data")  # as ``kinetix download --root data`` gives it
    plan = ExtractPlan(root, {KEY_A: root / "val" / f"{KEY_A}.mp4"})
    report = run(make_tar([(f"./{KEY_A}.mp4", payload(KEY_A))]), plan)
    assert report.written[KEY_A].path == tmp_path / "data" / "val" / f"{KEY_A}.mp4"
    assert files_under(tmp_path) == [f"data/val/{KEY_A}.mp4"]


def test_a_key_twice_in_one_shard_keeps_neither_copy(tmp_path: Path) -> None:
    data = make_tar(
        [(f"./{KEY_A}.mp4", payload(KEY_A)), (f"x/{KEY_A}.mp4", b"second, truncated"),
         (f"./{KEY_B}.mp4", payload(KEY_B)), (f"./{KEY_C}.mp4", payload(KEY_C)),
         (f"y/{KEY_C}.mp4", payload(KEY_C))]
    )  # fmt: skip
    report = run(data, plan_for(tmp_path, KEY_A, KEY_B))
    assert report.duplicates == [KEY_A, KEY_C]
    assert set(report.refused) == {KEY_A}  # KEY_C is not wanted
    code, reason = report.refused[KEY_A]
    assert code is ErrorCode.DUPLICATE_MEMBER and "twice" in reason
    assert set(report.written) == {KEY_B} and not report.not_found
    assert files_under(tmp_path) == [f"val/cls/{KEY_B}.mp4"]


def test_a_member_larger_than_the_per_clip_maximum_is_refused_unwritten(tmp_path: Path) -> None:
    data = make_tar(
        [(f"./{KEY_A}.mp4", payload(KEY_A, 50_000)), (f"./{KEY_B}.mp4", payload(KEY_B))]
    )
    plan = ExtractPlan(
        tmp_path, {k: tmp_path / f"{k}.mp4" for k in (KEY_A, KEY_B)}, max_member_bytes=10_000
    )
    report = run(data, plan)
    code, reason = report.refused[KEY_A]
    assert code is ErrorCode.OVERSIZED_MEMBER and "--max-clip-size" in reason
    assert files_under(tmp_path) == [f"{KEY_B}.mp4"]
    with pytest.raises(ConfigError, match="at least 1 byte"):
        ExtractPlan(tmp_path, {}, max_member_bytes=0)


def bomb(members: int, size: int) -> bytes:
    """A tar.gz of ``members`` members of ``size`` zero bytes, built without holding them."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    parts = []
    zeros = bytes(1 << 20)
    for i in range(members):
        info = tarfile.TarInfo(f"./bomb{i:04d}_000000_000010.mp4")
        info.size = size
        parts.append(deflate.compress(info.tobuf(tarfile.GNU_FORMAT)))
        for start in range(0, size, len(zeros)):
            parts.append(deflate.compress(zeros[: min(len(zeros), size - start)]))
        parts.append(deflate.compress(bytes(-size % 512)))
    parts.append(deflate.compress(bytes(1024)))
    parts.append(deflate.flush())
    return b"".join(parts)


def test_a_gzip_bomb_is_stopped_before_it_fills_the_disk(tmp_path: Path) -> None:
    data = bomb(200, 1 << 20)  # 200 MiB of "clips" in ~200 KB
    keys = [f"bomb{i:04d}_000000_000010" for i in range(200)]
    reader = ChunkedReader(data, (64 << 10,))
    with pytest.raises(ArchiveError, match="decompression bomb") as info:
        extract_stream(reader, plan_for(tmp_path, *keys), name="evil.tar.gz")
    assert info.value.code is ErrorCode.UNSAFE_ARCHIVE
    inflated = int(str(info.value).split("(")[1].split(" bytes")[0].replace(",", ""))
    assert inflated < (65 << 20) + 20 * len(data)  # stopped at the bound, not at 200 MiB
    assert_nothing_placed(tmp_path / "val")


@pytest.mark.parametrize("compress", [True, False])
def test_the_servers_md5_is_checked_and_recorded(tmp_path: Path, compress: bool) -> None:
    data = make_tar([(f"./{k}.mp4", payload(k, 20_000)) for k in (KEY_A, KEY_B)], compress=compress)
    md5 = hashlib.md5(data).hexdigest()
    report = extract_stream(
        ChunkedReader(data), plan_for(tmp_path, KEY_A), name="s", expected_md5=lambda: md5
    )
    assert report.integrity is Integrity.ETAG_MD5 and set(report.written) == {KEY_A}
    plain = run(data, plan_for(tmp_path / "no-md5", KEY_A))
    assert plain.integrity is (Integrity.GZIP_CRC if compress else Integrity.NONE)


def test_a_flipped_byte_in_a_plain_tar_is_caught_by_the_md5(tmp_path: Path) -> None:
    data = make_tar([(f"./{k}.mp4", payload(k, 20_000)) for k in (KEY_A, KEY_B)], compress=False)
    md5 = hashlib.md5(data).hexdigest()
    flipped = bytearray(data)
    flipped[512 + 10_000] ^= 0x01  # inside KEY_A's data: the tar structure cannot tell
    assert run(bytes(flipped), plan_for(tmp_path / "unchecked", KEY_A)).written  # no CRC here
    with pytest.raises(ArchiveError, match="MD5") as info:
        extract_stream(
            ChunkedReader(bytes(flipped)), plan_for(tmp_path / "checked", KEY_A), name="s",
            expected_md5=lambda: md5,
        )  # fmt: skip
    assert info.value.code is ErrorCode.CORRUPT_ARCHIVE
    assert_nothing_placed(tmp_path / "checked")


@pytest.mark.parametrize(
    ("etag", "md5"),
    [
        ('"0123456789abcdef0123456789ABCDEF"', "0123456789abcdef0123456789abcdef"),
        ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ('"0123456789abcdef0123456789abcdef-3"', None),  # S3 multipart: not the body's MD5
        ('W/"0123456789abcdef0123456789abcdef"', None),  # weak
        ('"5f1a-61c0"', None),  # nginx size-mtime
        (None, None),
    ],
)
def test_which_etags_are_an_md5(etag: str | None, md5: str | None) -> None:
    assert md5_from_etag(etag) == md5


# --- all or nothing -----------------------------------------------------------------------------


def good_shard() -> bytes:
    return make_tar([(f"./{k}.mp4", os.urandom(200_000)) for k in (KEY_A, KEY_B, KEY_C)])


def assert_nothing_placed(root: Path) -> None:
    assert not root.exists() or files_under(root) == []


def test_corrupt_gzip_mid_stream_places_nothing(tmp_path: Path) -> None:
    data = bytearray(good_shard())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    with pytest.raises(ArchiveError) as info:
        run(bytes(data), plan_for(tmp_path, KEY_A, KEY_B, KEY_C), name="400/val/part_3.tar.gz")
    assert info.value.code is ErrorCode.CORRUPT_ARCHIVE
    assert "400/val/part_3.tar.gz" in str(info.value)
    assert_nothing_placed(tmp_path)


def test_bad_crc_at_the_very_end_places_nothing(tmp_path: Path) -> None:
    data = bytearray(good_shard())
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer: every byte before it was fine
    with pytest.raises(ArchiveError, match="corrupt gzip"):
        run(bytes(data), plan_for(tmp_path, KEY_A, KEY_B, KEY_C))
    assert_nothing_placed(tmp_path)


def test_truncated_gzip_places_nothing(tmp_path: Path) -> None:
    data = good_shard()
    with pytest.raises(ArchiveError, match="ends early") as info:
        run(data[: len(data) * 3 // 4], plan_for(tmp_path, KEY_A, KEY_B, KEY_C))
    assert info.value.code is ErrorCode.CORRUPT_ARCHIVE
    assert_nothing_placed(tmp_path)


def test_truncated_plain_tar_places_nothing(tmp_path: Path) -> None:
    raw = make_tar([(f"./{k}.mp4", payload(k, 100_000)) for k in (KEY_A, KEY_B)], compress=False)
    for cut in (512 + 50_000, 512 + 100_000 + 100, 512 + 100_000 + 300):  # data, padding, header
        with pytest.raises(ArchiveError, match="truncated"):
            run(raw[:cut], plan_for(tmp_path, KEY_A, KEY_B), (4000,))
        assert_nothing_placed(tmp_path)


def test_reader_failing_mid_stream_places_nothing(tmp_path: Path) -> None:
    data = good_shard()
    reader = ChunkedReader(data, (65536,), fail_at=len(data) // 2)
    # the transfer's own error (and code) reaches the caller, which may resume the download
    with pytest.raises(TransferError, match="connection reset"):
        extract_stream(reader, plan_for(tmp_path, KEY_A, KEY_B, KEY_C), name="part_0.tar.gz")
    assert_nothing_placed(tmp_path)

    class BrokenFile(ChunkedReader):
        def read(self, size: int = -1) -> bytes:
            if self._pos > len(data) // 2:
                raise OSError(5, "Input/output error")
            return super().read(size)

    with pytest.raises(ArchiveError) as info:
        extract_stream(BrokenFile(data, (65536,)), plan_for(tmp_path, KEY_A), name="part_0.tar.gz")
    assert info.value.code is ErrorCode.CORRUPT_ARCHIVE
    assert isinstance(info.value.__cause__, OSError)
    assert "Input/output error" in str(info.value) and "nothing was kept" in str(info.value)
    assert_nothing_placed(tmp_path)


@pytest.mark.parametrize(
    ("body", "described"),
    [
        (b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>", "HTML page"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "XML document"),
        (b"", "empty body"),
        (b"PK\x03\x04" + bytes(600), "zip archive"),
        (bytes(range(256)) * 8, "unrecognised data"),
    ],
)
def test_not_an_archive(tmp_path: Path, body: bytes, described: str) -> None:
    with pytest.raises(ArchiveError, match=described) as info:
        run(body, plan_for(tmp_path, KEY_A), name="600/val/abseiling.tar.gz")
    assert info.value.code is ErrorCode.NOT_AN_ARCHIVE
    assert "600/val/abseiling.tar.gz" in str(info.value)
    assert_nothing_placed(tmp_path)


def test_a_killed_run_leaves_temps_that_a_rerun_replaces(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, KEY_A, KEY_B)
    for dest in plan.wanted.values():  # what SIGKILL mid-extraction leaves behind
        temp_path(dest).parent.mkdir(parents=True, exist_ok=True)
        temp_path(dest).write_bytes(b"half a clip")
    report = run(make_tar([(f"./{KEY_A}.mp4", payload(KEY_A))]), plan)
    assert set(report.written) == {KEY_A} and report.not_found == [KEY_B]
    assert files_under(tmp_path) == sorted(
        [f"val/cls/{KEY_A}.mp4", f"val/cls/.{KEY_B}.mp4.kx-part"]
    )
    assert remove_temps([tmp_path]) == [temp_path(plan.wanted[KEY_B])]
    assert files_under(tmp_path) == [f"val/cls/{KEY_A}.mp4"]


def test_memory_stays_bounded_on_a_highly_compressible_member(tmp_path: Path) -> None:
    """A 48 MiB member that gzip squeezes to ~50 KiB must not be inflated in one piece."""
    size = 48 << 20
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(f"./{KEY_A}.mp4")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    data = gzip.compress(buf.getvalue(), compresslevel=9)
    del buf
    assert len(data) < 1 << 20
    reader = ChunkedReader(data)
    tracemalloc.start()
    try:
        report = extract_stream(reader, plan_for(tmp_path, KEY_A), name="zeros")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.written[KEY_A].size == size
    assert peak < 4 * CHUNK_SIZE
    assert set(reader.requested) == {CHUNK_SIZE}
