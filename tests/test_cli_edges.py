"""The edges a new user hits first (issue 13): empty selections, unreadable list files, sizes,
``--help`` defaults, ``-v``/``-q`` after the verb, exit codes, read-only places, broken pipes."""

from __future__ import annotations

import builtins
import errno
import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _fakes import SleepRecorder

from kinetix.cli.download import config_from
from kinetix.cli.main import _verbosity, build_parser, main
from kinetix.config import DownloadConfig, ExecutorConfig, TransferConfig, YoutubeConfig
from kinetix.export.config import ShardSize
from kinetix.sizes import format_size, parse_size
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer

DATA = Path(__file__).parent / "data" / "annotations"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinetix: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a folder behave as on a read-only mount (EROFS), for root and other users alike.

    ``chmod`` does not stop root, which CI runs as; this refuses what the kernel would refuse:
    creating, opening for writing, making folders below it.
    """
    frozen: list[Path] = []

    def inside(path: object) -> bool:
        if isinstance(path, int):
            return False
        p = Path(os.fsdecode(path)).absolute()  # type: ignore[arg-type]
        return any(p == f or f in p.parents for f in frozen)

    def refuse(path: object) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))  # type: ignore[arg-type]

    real_open, real_mkdir, real_io_open = os.open, os.mkdir, io.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def fake_open(path, flags, *a, **k):  # type: ignore[no-untyped-def]
        if flags & writing and inside(path):
            raise refuse(path)
        return real_open(path, flags, *a, **k)

    def fake_mkdir(path, *a, **k):  # type: ignore[no-untyped-def]
        if inside(path) and not os.path.exists(path):
            raise refuse(path)
        return real_mkdir(path, *a, **k)

    def fake_io_open(file, mode="r", *a, **k):  # type: ignore[no-untyped-def]
        if any(c in mode for c in "wax+") and inside(file):
            raise refuse(file)
        return real_io_open(file, mode, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(io, "open", fake_io_open)
    monkeypatch.setattr(builtins, "open", fake_io_open)
    return lambda folder: frozen.append(folder.absolute())


@pytest.fixture
def val_root(
    tmp_path: Path, mirror_server: MirrorServer, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A K600 val root downloaded from the synthetic mirror."""
    root = tmp_path / "k600"
    argv = ["download", "k600", "--split", "val", "--root", str(root)]
    assert main([*argv, "--mirror", mirror_server.url, "--no-progress"]) == 0
    capsys.readouterr()
    return root


# --- 1. an empty selection is an error naming the flag, never "everything" ----------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--classes", ""], "--classes ''"),
        (["--classes", ","], "--classes ','"),
        (["--classes", " , ", "--classes", ""], "--classes ' , ' --classes ''"),
        (["--classes-file", "{blank}"], "--classes-file"),
        (["--classes-file", "{comments}"], "--classes-file"),
        (["--ids", "{blank}"], "--ids"),
    ],
)
def test_empty_selection_is_a_usage_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mirror_server: MirrorServer,
    flags: list[str],
    named: str,
) -> None:
    blank, comments = tmp_path / "blank.txt", tmp_path / "comments.txt"
    blank.write_text("\n  \n\n")
    comments.write_text("# none wanted yet\n\n")
    flags = [f.format(blank=blank, comments=comments) for f in flags]
    root = tmp_path / "root"
    code, out, err = run(
        capsys, "download", "k400", "--split", "val", "--root", str(root),
        "--mirror", mirror_server.url, "--no-progress", *flags,
    )  # fmt: skip
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert named in line and "leave the flag out" in line
    assert not root.exists()  # nothing was fetched, not even the root made
    # the catalog's own listing says the same, before reading any annotation file
    code, out, err = run(capsys, "annotations", "list", "k400", "--split", "val", *flags,
                         "--file", str(DATA / "k400_val.csv"))  # fmt: skip
    assert code == 2 and out == "" and named in one_error_line(err)


# --- 5. unreadable inputs and unwritable places: one line each, the right exit code -------------


@pytest.mark.parametrize("flag", ["--classes-file", "--ids"])
def test_non_utf8_list_file_is_one_line_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str
) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"abseiling\n# latin-1 below\nt\xe9l\xe9phone\n")
    code, out, err = run(capsys, "annotations", "list", "k400", "--split", "val", flag, str(path),
                         "--file", str(DATA / "k400_val.csv"))  # fmt: skip
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"{path}:3: not UTF-8 text (byte 0xe9)" in line and "save it as UTF-8" in line


def test_verify_on_a_read_only_root_is_one_line(
    capsys: pytest.CaptureFixture[str], val_root: Path, read_only: Callable[[Path], None]
) -> None:
    (val_root / ".kinetix" / "lock").unlink()  # a copy made without it: the lock must be created
    read_only(val_root)
    code, _, err = run(capsys, "verify", str(val_root), "--no-progress")
    line = one_error_line(err)
    assert code == 2
    assert f"cannot write to {val_root}: Read-only file system" in line
    assert "needs a writable root" in line


def test_read_only_kinetix_cache_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mirror_server: MirrorServer,
    monkeypatch: pytest.MonkeyPatch,
    read_only: Callable[[Path], None],
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("KINETIX_CACHE", str(cache))
    read_only(cache)
    code, out, err = run(capsys, "annotations", "fetch", "k400", "--split", "val",
                         "--mirror", mirror_server.url)  # fmt: skip
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert "cannot write to the annotation cache" in line and "Read-only file system" in line
    assert "set KINETIX_CACHE to a writable folder" in line


def test_export_to_a_read_only_default_out_is_one_line(
    capsys: pytest.CaptureFixture[str], val_root: Path, read_only: Callable[[Path], None]
) -> None:
    read_only(val_root / "exports")
    code, out, err = run(capsys, "export", str(val_root), "--format", "csv")
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"cannot write to {val_root / 'exports' / 'csv'} (the default --out" in line
    assert "pass a writable --out DIR" in line


def test_an_os_error_mid_run_is_one_line_exit_1(
    capsys: pytest.CaptureFixture[str], val_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kinetix.export.job as job

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(val_root / "x.csv"))

    monkeypatch.setattr(job, "_require_out", full)
    code, _, err = run(capsys, "export", str(val_root), "--format", "csv")
    line = one_error_line(err)
    assert code == 1
    assert "No space left on device; free some space and rerun" in line


def test_broken_pipe_exits_quietly() -> None:
    # ``kinetix annotations labels k400 | head -2``: the reader is gone before the output ends
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from kinetix.cli.main import main; "
         "sys.exit(main(['annotations', 'labels', 'k400']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # no reader at all: the first flush hits EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert err == ""


# --- frictions: sizes, defaults, verbosity, exit codes -------------------------------------------


def test_one_size_parser_for_every_size_flag() -> None:
    argv = ["download", "k400", "--split", "val", "--piece-size", "1GB"]
    assert build_parser().parse_args(argv).piece_size == 10**9 == ShardSize.parse("1GB").bytes
    for text, size in [("1G", 2**30), ("1GiB", 2**30), ("500MiB", 500 << 20), ("64K", 65536),
                       ("2kb", 2000), ("1.5M", 3 << 19), ("512", 512), ("7B", 7)]:  # fmt: skip
        assert parse_size(text) == size
        assert ShardSize.parse(text if text[-1].isalpha() else text + "B").bytes == size
        assert parse_size(format_size(size)) == size
    args = build_parser().parse_args([*argv[:4], "--max-clip-size", "2G", "--min-rate", "10KB"])
    assert (args.max_clip_size, args.min_rate) == (2 << 30, 10_000)
    assert ShardSize.parse("1000") == ShardSize(clips=1000, bytes=None)


@pytest.mark.parametrize("text", ["0", "0M", "0B"])
def test_piece_size_zero_is_a_usage_error_in_the_flags_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    code, _, err = run(capsys, "download", "k400", "--split", "val",
                       "--root", str(tmp_path / "r"), "--piece-size", text)  # fmt: skip
    line = one_error_line(err)
    assert code == 2
    assert "--piece-size must be at least 1 byte" in line
    assert "chunk_size" not in line and "piece_size" not in line


def test_a_size_that_is_not_one_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["download", "k400", "--split", "val", "--piece-size", "4X"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --piece-size: '4X' is not a size; e.g. 4M" in err


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    _, _, text = capsys.readouterr().out.partition("options:")
    text = " ".join(text.split())  # argparse wraps lines
    for flag, default in [("--root", "kinetics"), ("--connections", "8"), ("--parallel", "4"),
                          ("--layout", "raw"), ("--source", "cvdf"), ("--rate", "1.0"),
                          ("--margin", "0.5"), ("--trim", "exact"), ("--piece-size", "4M"),
                          ("--max-clip-size", "1G"), ("--min-rate", "1K")]:  # fmt: skip
        shown = re.search(re.escape(flag) + r"\b(?:(?!\(default).)*\(default: ([^)]*)\)", text)
        assert shown and shown.group(1) == default, flag
    assert "exit codes: 0 done; 1" in " ".join(build_parser().format_help().split())


def test_cli_defaults_are_the_config_objects_defaults(tmp_path: Path) -> None:
    args = build_parser().parse_args(["download", "k400", "--split", "val", "--root", "r"])
    config = config_from(args)
    defaults = DownloadConfig(root=Path("r"), release="k400", split="val")
    assert config.transfer == TransferConfig()
    assert config.youtube == YoutubeConfig()
    assert config.executor == ExecutorConfig()
    for name in ("source", "layout", "parallel", "max_clip_bytes", "keep_archives", "selection"):
        assert getattr(config, name) == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        (["status", "r"], 0),
        (["status", "r", "-v"], 1),
        (["-v", "status", "r", "-v"], 2),
        (["status", "r", "-q"], -1),
        (["-q", "annotations", "labels", "k400"], -1),
        (["annotations", "labels", "k400", "-vv"], 2),
    ],
)
def test_verbosity_flags_before_or_after_the_verb(argv: list[str], verbosity: int) -> None:
    assert _verbosity(build_parser().parse_args(argv)) == verbosity


def test_quiet_after_the_verb_turns_progress_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from kinetix.download import DownloadReport

    seen: list[bool] = []

    def fake(config: DownloadConfig, **kwargs: object) -> DownloadReport:
        seen.append(config.progress)
        return DownloadReport("k400", "val")

    monkeypatch.setattr("kinetix.download.download", fake)
    assert main(["download", "k400", "--split", "val", "--root", "r", "-q"]) == 0
    assert main(["download", "k400", "--split", "val", "--root", "r"]) == 0
    assert seen == [False, True]


def test_exit_codes_usage_2_failed_work_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sleeps: SleepRecorder
) -> None:
    argv = ["download", "k600", "--split", "val", "--root", str(tmp_path / "r"), "--no-progress"]
    code, _, err = run(capsys, *argv, "--classes", "abseling", "--annotations",
                       str(DATA / "k600_val.csv"))  # fmt: skip
    assert code == 2 and "unknown class 'abseling'" in one_error_line(err)
    # the network failed: work that could not be done, not a misused command
    code, _, err = run(capsys, *argv, "--mirror", f"http://127.0.0.1:{closed_port()}/")
    assert code == 1 and "connection refused" in one_error_line(err)


@pytest.fixture(autouse=True)
def _no_stray_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "kinetix-cache"))
    yield


def test_strict_fails_a_run_that_left_clips_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mirror: MirrorIndex,
    mirror_server: MirrorServer,
) -> None:  # fmt: skip
    split = mirror.split("k400", "val")
    gaps = len(split.missing)
    argv = ["download", "k400", "--split", "val", "--root", str(tmp_path / "r"),
            "--mirror", mirror_server.url, "--no-progress"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 0 and f"failed: not_in_shard {gaps}" in out and err == ""
    code, out, err = run(capsys, *argv, "--strict")  # a rerun: nothing new, still incomplete
    assert code == 1
    selected = len(split.clips)
    assert one_error_line(err).startswith(
        f"kinetix: error: --strict: {gaps} of {selected} selected clips are not present "
        f"(not_in_shard {gaps}); see 'kinetix status "
    )
    # a complete selection passes --strict
    present = sorted(
        set(mirror.split("k400", "val").clips) - set(mirror.split("k400", "val").missing)
    )
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(present) + "\n")
    code, _, err = run(capsys, *argv, "--strict", "--ids", str(ids))
    assert code == 0 and err == ""
