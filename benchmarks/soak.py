"""The reliability soak: kill -9 at random times, network faults, hostile shards, a read-only mount,
a full disk and damaged manifests, against the synthetic mirror; one table of what went wrong.

    python benchmarks/soak.py [--kills 20] [--network 100] [--seed 0] [--keep DIR]

The kill -9 stages: ``download`` (K400 train from scratch), ``replacement`` (K400 train from
the state a run leaves when it has just decided on the replacement set: every kill lands in
the replacement-set phase or after it), ``verify``, ``process``, ``frames`` and ``youtube``
(K700 val with ``--source youtube`` against the mirror's ``youtube/{id}.mp4`` side, through
the real yt-dlp and ffmpeg).

Every trial checks the same promises afterwards (a rerun of the same command must finish):

- corrupt accepted: a clip recorded present whose bytes are not the mirror's good bytes (or an
  output that does not decode / has fewer frames than recorded);
- data lost: a clip the mirror holds that is not present after the rerun, or a clip file of a
  finished root that a killed verify/process/frames moved or changed;
- hangs: a run (or rerun) that did not end within its limit;
- orphans: processes of a killed run still alive 2 s after the kill;
- leftovers: hidden temps or spent .part/.state files still there after the rerun;
- worst time to a clear error: the longest a failing run took to stop with its one-line error.

Kill trials run the CLI as a subprocess in its own session (so what it leaves alive is
countable), waiting until it holds its root's lock before drawing the kill time. Reruns and the
network trials run in this process. Needs root (mount) for the read-only and ENOSPC trials.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import logging
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinetix.config import DownloadConfig, TransferConfig
from kinetix.download import download
from kinetix.errors import KinetixError
from kinetix.store.layout import manifest_path, partial_dir, state_dir
from kinetix.store.leftovers import is_temp_name
from kinetix.synthetic.media import frame_index
from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, build_mirror
from kinetix.synthetic.server import FAULT_KINDS, MirrorServer

SPEC = MirrorSpec(
    releases={"k400": ("val", "train")},
    classes=3,
    clips_per_class=3,
    shard_size=4,
    plain_tar_shard=True,
    appledouble=True,
    corrupted=2,
    missing=2,
)
# The YouTube side: K700 val clips cut from full-length youtube/{id}.mp4 source videos.
YOUTUBE_SPEC = MirrorSpec(
    releases={"k700": ("val",)},
    classes=2,
    clips_per_class=3,
    shard_size=6,
    corrupted=0,
    missing=0,
    source_videos=4,
    source_releases=("k700",),
)
PY = sys.executable
LIMIT = 180.0  # seconds a run may take before it counts as a hang


@dataclass
class Tally:
    trials: int = 0
    faults: int = 0
    corrupt: int = 0
    lost: int = 0
    hangs: int = 0
    orphans: int = 0
    leftovers: int = 0
    unclear: int = 0  # a traceback or a multi-line error instead of one clear line
    worst_error: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def trial(self, kind: str) -> None:
        self.trials += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def note(self, text: str) -> None:
        self.notes.append(text)
        print("  !", text, flush=True)


# --- helpers ----------------------------------------------------------------------------------


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(root: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{manifest_path(root)}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT split, key, state, path, sha256, num_frames, verify FROM clips"
        ).fetchall()
    finally:
        db.close()


def leftovers(root: Path) -> list[str]:
    found = [
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and is_temp_name(p.name)
    ]
    partial = partial_dir(root)
    if partial.is_dir():
        found += [f"partial/{p.name}" for p in partial.iterdir() if p.name != "youtube"]
    return found


def session_alive(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    alive = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def lock_held_by(root: Path, pid: int) -> bool:
    try:
        return (state_dir(root) / "lock").read_text().strip() == str(pid)
    except OSError:
        return False


def check_download(tally: Tally, mirror: MirrorIndex, root: Path, split: str, what: str) -> None:
    """Every clip the mirror holds is present with its good bytes; nothing else is present."""
    s = mirror.split("k400", split)
    got = {key: (state, path, digest) for sp, key, state, path, digest, *_ in rows(root)
           if sp == split}  # fmt: skip
    for clip in s.clips.values():
        key = clip.clip.key
        state, path, digest = got.get(key, (None, None, None))
        if clip.sha256 is None or key in s.missing:
            if state == "present":
                tally.corrupt += 1
                tally.note(f"{what}: {key} present but the mirror has no copy")
            continue
        if state != "present":
            tally.lost += 1
            tally.note(f"{what}: {key} is {state} after the rerun")
            continue
        on_disk = root / path
        if not on_disk.is_file() or sha(on_disk) != clip.sha256 or digest != clip.sha256:
            tally.corrupt += 1
            tally.note(f"{what}: {key} present with bytes that are not the mirror's")


def check_youtube(
    tally: Tally, mirror: MirrorIndex, root: Path, what: str, sourced: set[str]
) -> None:
    """Every clip with a source video is present, cut from it exactly; no other clip is."""
    import av

    s = mirror.split("k700", "val")
    db = sqlite3.connect(f"file:{manifest_path(root)}?mode=ro", uri=True)
    try:
        got = dict(
            (key, (state, path, source))
            for key, state, path, source in db.execute(
                "SELECT key, state, path, source FROM clips WHERE split = 'val'"
            )
        )
    finally:
        db.close()
    for key in sourced:
        state, path, source = got.get(key, (None, None, None))
        if state != "present":
            tally.lost += 1
            tally.note(f"{what}: {key} is {state} after the rerun")
            continue
        clip = s.clips[key].clip
        try:
            with av.open(str(root / path)) as container:
                stream = container.streams.video[0]
                fps = float(stream.average_rate)
                frames = [
                    frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(stream)
                ]
        except Exception as exc:
            tally.corrupt += 1
            tally.note(f"{what}: {key} present but does not decode: {exc}")
            continue
        span = (clip.time_end - clip.time_start) * fps
        if (
            source != "youtube"
            or frames[0] != round(clip.time_start * fps)
            or abs(len(frames) - span) > 1
        ):
            tally.corrupt += 1
            tally.note(f"{what}: {key} present but not the clip's frames ({len(frames)})")
    for key, (state, _path, _source) in got.items():
        if state == "present" and key not in sourced:
            tally.corrupt += 1
            tally.note(f"{what}: {key} present but the mirror has no source video for it")
    stray = [p.name for p in root.rglob("*") if p.is_file() and ".kinetix" not in p.parts
             and p.suffix == ".mp4" and p.stem not in sourced]  # fmt: skip
    if stray:
        tally.leftovers += len(stray)
        tally.note(f"{what}: files that are no clip left in the root: {stray[:3]}")


def run_cli(argv: list[str], env: dict[str, str], limit: float = LIMIT) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        done = subprocess.run(
            [PY, "-m", "kinetix.cli.main", *argv], env=env, capture_output=True, text=True,
            timeout=limit,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.monotonic() - started
    return done.returncode, done.stderr, time.monotonic() - started


def one_clear_line(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.startswith("kinetix: error:")]
    return "Traceback" not in stderr and len(lines) == 1


# --- kill -9 trials ---------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (root, out) -> CLI arguments
    prepare: Callable[[Path, Path], None]  # make the trial's starting state
    check: Callable[[Tally, Path, Path, str], None]  # after the rerun
    lock_root: Callable[[Path, Path], Path]


def kill_trials(
    tally: Tally, stage: Stage, trials: int, work: Path, env: dict[str, str], rng: random.Random
) -> None:
    root, out = work / "root", work / "out"
    # calibrate: how long the stage works once it holds the lock
    stage.prepare(root, out)
    spans = []
    for _ in range(2):
        stage.prepare(root, out)
        proc = subprocess.Popen(
            [PY, "-m", "kinetix.cli.main", *stage.argv(root, out)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        lock = stage.lock_root(root, out)
        while not lock_held_by(lock, proc.pid) and proc.poll() is None:
            time.sleep(0.01)
        began = time.monotonic()
        proc.wait()
        spans.append(time.monotonic() - began)
    span = max(spans)
    print(f"{stage.name}: works {span:.2f} s once locked; {trials} kills", flush=True)
    for i in range(trials):
        stage.prepare(root, out)
        proc = subprocess.Popen(
            [PY, "-m", "kinetix.cli.main", *stage.argv(root, out)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        lock = stage.lock_root(root, out)
        deadline = time.monotonic() + LIMIT
        while not lock_held_by(lock, proc.pid) and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0, span * 1.1))
        ended_first = proc.poll() is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(2.0)
        alive = session_alive(proc.pid)
        if alive:
            tally.orphans += len(alive)
            tally.note(f"{stage.name} kill {i}: {len(alive)} process(es) alive after 2 s")
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        tally.trial(f"kill -9 {stage.name}")
        code, err, _took = run_cli(stage.argv(root, out), env)
        what = f"{stage.name} kill {i}" + (" (after it ended)" if ended_first else "")
        if code == -1:
            tally.hangs += 1
            tally.note(f"{what}: the rerun did not end within {LIMIT:.0f} s")
            continue
        if code != 0:
            tally.note(f"{what}: the rerun exited {code}: {err.strip()[-300:]}")
            tally.lost += 1
            continue
        stage.check(tally, root, out, what)
        left = leftovers(root) + (leftovers(out) if out.exists() else [])
        if left:
            tally.leftovers += len(left)
            tally.note(f"{what}: left behind {left[:3]}")


# --- network faults ---------------------------------------------------------------------------

FAULT_TARGETS = ("400/val/*.tar.gz", "400/annotations/val.csv", "400/val/*path*.txt")


def network_trials(
    tally: Tally, mirror: MirrorIndex, server: MirrorServer, n: int, work: Path, rng: random.Random
) -> None:
    transfer = TransferConfig(timeout=3.0, min_rate=2048, backoff_max=2.0, retries=4)
    kinds = list(FAULT_KINDS)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        target = FAULT_TARGETS[0] if i % 3 else rng.choice(FAULT_TARGETS)
        times = rng.choice((1, 2, 3, None)) if kind not in ("stall", "trickle") else 1
        params: dict[str, Any] = {}
        if kind == "slow_first_byte":
            params["delay"] = rng.choice((0.5, 5.0))
        if kind == "stall":
            params["delay"] = 30.0
        if kind in ("reset", "truncate"):
            params["after_bytes"] = rng.randrange(0, 200_000)
        root = work / f"net{i}"
        server.clear_faults()
        fault = server.add_fault(target, kind, times=times, **params)
        config = DownloadConfig(
            root=root, release="k400", split="val", mirror=server.url, progress=False,
            transfer=transfer,
        )  # fmt: skip
        started = time.monotonic()
        outcome = _bounded(lambda config=config: download(config), LIMIT)
        took = time.monotonic() - started
        tally.trial("network")
        tally.faults += max(fault.hits, 1)
        what = f"network {i} ({kind} x{times} on {target})"
        if outcome == "hang":
            tally.hangs += 1
            tally.note(f"{what}: did not end within {LIMIT:.0f} s")
            continue
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, KinetixError) or "\n" in str(outcome):
                tally.unclear += 1
                tally.note(f"{what}: {type(outcome).__name__}: {outcome}")
            tally.worst_error = max(tally.worst_error, took)
        elif not outcome.ok:
            tally.worst_error = max(tally.worst_error, took)
        server.clear_faults()
        again = _bounded(lambda config=config: download(config), LIMIT)
        if again == "hang" or isinstance(again, BaseException) or not again.ok:
            tally.lost += 1
            tally.note(f"{what}: the rerun without faults failed: {again}")
            continue
        check_download(tally, mirror, root, "val", what)
        shutil.rmtree(root, ignore_errors=True)


def _bounded(fn: Callable[[], Any], limit: float) -> Any:
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    return box[0] if box else "hang"


# --- hostile archives -------------------------------------------------------------------------


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]


def _write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], gz: bool = True) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw, compresslevel=1) if gz else raw)


def _info(
    name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mtime = size, kind, link, 1_600_000_000
    return info


def _bomb(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """The first clip's member replaced by 768 MiB of zeros (gzip: under 1 MiB)."""
    info, _ = members[0]
    size = 768 << 20
    with (
        gzip.open(path, "wb", compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(_info(info.name, size), io.BufferedReader(_Zeros(size)))
        for m, data in members[1:]:
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)


class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def hostile_variants(members: list[tuple[tarfile.TarInfo, bytes]], escape: Path) -> dict[str, Any]:
    first, data = members[0]
    half = (_info(first.name, len(data) // 2), data[: len(data) // 2])
    return {
        "parent_escape": [*members, (_info("../../escaped.mp4", 5), b"evil!")],
        "absolute_path": [*members, (_info(str(escape / "abs.mp4"), 5), b"evil!")],
        "symlink": [(_info(first.name, 0, tarfile.SYMTYPE, str(escape / "t")), b""), *members[1:]],
        "hardlink": [(_info(first.name, 0, tarfile.LNKTYPE, "/etc/passwd"), b""), *members[1:]],
        "device": [(_info(first.name, kind=tarfile.CHRTYPE), b""), *members[1:]],
        "fifo": [(_info(first.name, kind=tarfile.FIFOTYPE), b""), *members[1:]],
        "duplicate_key": [*members, half],
        "truncated_gzip": "truncate",
        "not_an_archive": b"<html><body>503 Service Unavailable</body></html>",
        "gzip_bomb": "bomb",
        "long_name": [*members, (_info("x/" * 60 + "long.mp4", 5), b"evil!")],
    }


def hostile_trials(tally: Tally, mirror: MirrorIndex, work: Path, env: dict[str, str]) -> None:
    s = mirror.split("k400", "val")
    shard = s.shards[0]
    good = mirror.root / shard
    members = _members(good)
    escape = work / "outside"
    escape.mkdir(parents=True)
    for name, variant in hostile_variants(members, escape).items():
        copy = work / f"mirror-{name}"
        shutil.copytree(mirror.root, copy, symlinks=True)
        target = copy / shard
        if variant == "truncate":
            target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        elif variant == "bomb":
            _bomb(target, members)
        elif isinstance(variant, bytes):
            target.write_bytes(variant)
        else:
            _write_tar(target, variant)
        root = work / f"hostile-{name}"
        with MirrorServer(copy) as server:
            argv = ["download", "k400", "--split", "val", "--root", str(root)]
            argv += ["--mirror", server.url, "--no-progress", "--max-clip-size", "64M"]
            code, err, took = run_cli(argv, env)
        tally.trial("hostile")
        what = f"hostile {name}"
        if code == -1:
            tally.hangs += 1
            tally.note(f"{what}: did not end within {LIMIT:.0f} s")
        elif code != 0:
            tally.worst_error = max(tally.worst_error, took)
            if not one_clear_line(err):
                tally.unclear += 1
                tally.note(f"{what}: exit {code} without one clear line: {err.strip()[-300:]}")
        outside = [p for p in escape.rglob("*")] + list(work.glob("escaped*"))
        outside += list(root.parent.glob("escaped*"))
        if outside:
            tally.corrupt += len(outside)
            tally.note(f"{what}: wrote outside the root: {outside}")
        if manifest_path(root).exists():
            _check_present_good(tally, mirror, root, "val", what)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        print(f"  {what}: exit {code} in {took:.1f} s", flush=True)


def _check_present_good(
    tally: Tally, mirror: MirrorIndex, root: Path, split: str, what: str
) -> None:
    """What a hostile shard's run recorded present must be the mirror's good bytes."""
    s = mirror.split("k400", split)
    for sp, key, state, path, _digest, *_ in rows(root):
        if sp != split or state != "present":
            continue
        good = s.clips[key].sha256
        if not (root / path).is_file() or sha(root / path) != good:
            tally.corrupt += 1
            tally.note(f"{what}: {key} recorded present with bad bytes")


# --- read-only mount, full disk, damaged manifests ---------------------------------------------


def _mount(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True).returncode == 0


def readonly_trial(tally: Tally, finished: Path, work: Path, env: dict[str, str]) -> None:
    src, mnt = work / "ro-src", work / "ro"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(finished, src)
    mnt.mkdir()
    if not (_mount(["mount", "--bind", str(src), str(mnt)])
            and _mount(["mount", "-o", "remount,bind,ro", str(mnt)])):  # fmt: skip
        tally.note("read-only: cannot mount here (needs root); skipped")
        return
    try:
        checks = (
            ["status", str(mnt)],
            ["export", str(mnt), "--format", "csv", "--out", str(work / "ro.csv")],
            ["frames", str(mnt), "--out", str(work / "ro-frames"), "--no-progress"],
        )
        for argv in checks:
            code, err, _took = run_cli(argv, env)
            tally.trial("read-only")
            if code != 0:
                tally.lost += 1
                tally.note(f"read-only {argv[0]}: exit {code}: {err.strip()[-300:]}")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@contextlib.contextmanager
def _tmpfs(tally: Tally, path: Path, size: str) -> Any:
    """A real tmpfs of ``size`` mounted at ``path`` (yields False, noted, when refused)."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]):
        tally.note("ENOSPC: cannot mount a tmpfs here (needs root); skipped")
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _judge_stop(tally: Tally, what: str, code: int, err: str, took: float, says: str = "") -> None:
    """A run that should stop: it must end, with one clear line (holding ``says``)."""
    if code == -1:
        tally.hangs += 1
        tally.note(f"{what}: did not end")
    elif code != 0:
        tally.worst_error = max(tally.worst_error, took)
        if not one_clear_line(err) or says not in err.lower():
            tally.unclear += 1
            tally.note(f"{what}: exit {code} without one clear line: {err.strip()[-300:]}")


def enospc_trials(tally: Tally, mirror: MirrorIndex, server: MirrorServer, work: Path,
                  env: dict[str, str]) -> None:  # fmt: skip
    argv = ["download", "k400", "--split", "val", "--mirror", server.url, "--no-progress"]
    argv += ["--parallel", "1"]
    for size in ("200k", "700k", "1200k"):
        root = work / f"full-{size}"
        with _tmpfs(tally, root, size) as mounted:
            if not mounted:
                return
            code, err, took = run_cli([*argv, "--root", str(root)], env)
            tally.trial("ENOSPC")
            what = f"ENOSPC {size}"
            _judge_stop(tally, what, code, err, took)
            if manifest_path(root).exists():
                with contextlib.suppress(sqlite3.Error):
                    _check_present_good(tally, mirror, root, "val", what)
            print(f"  {what}: exit {code} in {took:.1f} s: {err.strip()[-160:]}", flush=True)
    # A disk that fills up during a transfer: the root has room (the free-space check passes)
    # but its .kinetix/partial is a real tmpfs smaller than the first shard, so the write of
    # its .part hits a real ENOSPC. The partial must be kept, the run stop with one line, and
    # with room again the rerun resume it and finish with good bytes.
    first = mirror.path(mirror.split("k400", "val").shards[0]).stat().st_size
    argv += ["--connections", "2", "--piece-size", "32K"]
    for fraction in (4, 2):
        size = f"{max(first // fraction // 1024, 16)}k"
        root = work / f"midway-{size}"
        partial = partial_dir(root)
        with _tmpfs(tally, partial, size) as mounted:
            if not mounted:
                return
            code, err, took = run_cli([*argv, "--root", str(root)], env)
            tally.trial("ENOSPC")
            tally.faults += 1
            what = f"ENOSPC mid-transfer ({size} partial dir, shard {first // 1024}k)"
            kept = [q for q in partial.iterdir() if q.name.endswith(".part")]
            _judge_stop(tally, what, code, err, took, says="no space")
            if code == 0:
                tally.note(f"{what}: finished without hitting the full disk (nothing tested)")
            elif code != -1 and not kept:
                tally.lost += 1
                tally.note(f"{what}: the partial was not kept")
            print(f"  {what}: exit {code} in {took:.1f} s, {len(kept)} .part kept: "
                  f"{err.strip()[-160:]}", flush=True)  # fmt: skip
            _mount(["mount", "-o", "remount,size=64m", str(partial)])
            code, err, _took = run_cli([*argv, "--root", str(root)], env)
            if code != 0:
                tally.lost += 1
                tally.note(f"{what}: the rerun with room exited {code}: {err.strip()[-300:]}")
            else:
                check_download(tally, mirror, root, "val", what)


def damage_trials(tally: Tally, finished: Path, work: Path, env: dict[str, str]) -> None:
    def truncate(m: Path) -> None:
        with open(m, "r+b") as f:
            f.truncate(m.stat().st_size // 3)

    def wrong(m: Path) -> None:
        db = sqlite3.connect(m)
        db.executescript("DROP TABLE clips; CREATE TABLE clips (x);")
        db.close()

    def page(m: Path) -> None:
        with open(m, "r+b") as f:
            f.seek(3 * 4096)
            f.write(b"\xff" * 8192)

    kinds: dict[str, Callable[[Path], None]] = {
        "truncated": truncate,
        "junk": lambda m: m.write_bytes(os.urandom(40_000)),
        "deleted": lambda m: m.unlink(),
        "emptied": lambda m: m.write_bytes(b""),
        "wrong_schema": wrong,
        "bad_page": page,
    }
    for name, damage in kinds.items():
        root = work / f"damaged-{name}"
        shutil.copytree(finished, root)
        damage(manifest_path(root))
        before = {p: sha(p) for p in root.glob("val/*/*.mp4")}
        started = time.monotonic()
        code, err, _took = run_cli(["verify", str(root)], env)
        tally.trial("manifest damage")
        tally.faults += 1
        if code != 2 or not one_clear_line(err) or "kinetix repair" not in err:
            tally.unclear += 1
            tally.note(f"damage {name}: verify said ({code}) {err.strip()[-300:]}")
        tally.worst_error = max(tally.worst_error, time.monotonic() - started)
        code, err, _took = run_cli(["repair", str(root), "--no-progress"], env)
        after = {p: sha(p) for p in root.glob("val/*/*.mp4")}
        if code != 0 or after != before:
            tally.lost += 1
            tally.note(f"damage {name}: repair exit {code}: {err.strip()[-300:]}")


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="kill -9 trials per stage")
    p.add_argument("--network", type=int, default=100, help="network fault trials")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="work folder to keep (default: a temp dir)")
    p.add_argument(
        "--only", help="comma-separated parts: kills,network,hostile,readonly,enospc,damage"
    )
    p.add_argument("--stages", help="comma-separated kill stages (default: all six)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    parts = set((args.only or "kills,network,hostile,readonly,enospc,damage").split(","))
    rng = random.Random(args.seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="kinetix-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KINETIX_CACHE=str(work / "cache"), PYTHONWARNINGS="ignore")
    os.environ["KINETIX_CACHE"] = env["KINETIX_CACHE"]
    tally = Tally()
    started, cpu0 = time.monotonic(), time.process_time()
    mirror = build_mirror(work / "mirror", SPEC)
    yt_mirror = build_mirror(work / "yt-mirror", YOUTUBE_SPEC)
    sourced = {c.key for c in yt_mirror.split("k700", "val").clips.values() if c.source_video}
    load = os.getloadavg()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the YouTube side throttled, so a run spends seconds in yt-dlp/ffmpeg sections to kill
    with (
        MirrorServer(mirror.root) as server,
        MirrorServer(yt_mirror.root, total_bps=400_000) as yt_server,
    ):
        finished = work / "finished"
        for split in ("val", "train"):
            r = download(DownloadConfig(root=finished, release="k400", split=split,
                                        mirror=server.url, progress=False))  # fmt: skip
            assert r.ok, r.errors
        base_hashes = {p: sha(p) for p in finished.glob("*/*/*.mp4")}

        def fresh(root: Path, out: Path) -> None:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)

        def copy_finished(root: Path, out: Path) -> None:
            fresh(root, out)
            shutil.copytree(finished, root)

        def unverified(root: Path, out: Path) -> None:
            copy_finished(root, out)
            db = sqlite3.connect(manifest_path(root))
            db.execute("UPDATE clips SET verify=NULL, verify_level=NULL")
            db.commit()
            db.close()

        def same_clips(tally: Tally, root: Path, out: Path, what: str) -> None:
            now = {p.relative_to(root): sha(p) for p in root.glob("*/*/*.mp4")}
            was = {p.relative_to(finished): h for p, h in base_hashes.items()}
            if now != was:
                tally.lost += len(set(was.items()) ^ set(now.items()))
                tally.note(f"{what}: the source clips changed")

        def check_verify(tally: Tally, root: Path, out: Path, what: str) -> None:
            same_clips(tally, root, out, what)
            bad = [r for r in rows(root) if r[2] == "present" and r[6] != "good"]
            if bad:
                tally.lost += len(bad)
                tally.note(f"{what}: {len(bad)} present clips not verified good after the rerun")

        def check_derived(tally: Tally, root: Path, out: Path, what: str) -> None:
            same_clips(tally, root, out, what)
            want = {(r[0], r[1]) for r in rows(root) if r[2] == "present"}
            got = {(r[0], r[1]): r for r in rows(out) if r[2] == "present"}
            for ident in want - set(got):
                tally.lost += 1
                tally.note(f"{what}: {ident} not present in the output")
            for r in got.values():
                path = out / r[3]
                if path.is_dir():
                    n = len(list(path.glob("img_*.jpg")))
                    if n != r[5] or n == 0:
                        tally.corrupt += 1
                        tally.note(f"{what}: {r[1]} has {n} frames, recorded {r[5]}")
                elif not path.is_file() or path.stat().st_size == 0:
                    tally.corrupt += 1
                    tally.note(f"{what}: {r[1]} output missing or empty")
                else:
                    from kinetix.process.verify import check_video

                    try:
                        check_video(path)
                    except KinetixError as exc:
                        tally.corrupt += 1
                        tally.note(f"{what}: {r[1]} output does not decode: {exc}")

        def download_argv(root: Path, out: Path) -> list[str]:
            return ["download", "k400", "--split", "train", "--root", str(root),
                    "--mirror", server.url, "--no-progress"]  # fmt: skip

        # the state a run leaves when it has just decided on the replacement set
        before_replacement = work / "before-replacement"
        crash_env = dict(env, KINETIX_CRASH_AT="download.replacement")
        code, err, _took = run_cli(download_argv(before_replacement, work), crash_env)
        assert code == -signal.SIGKILL, (code, err)

        def at_replacement(root: Path, out: Path) -> None:
            fresh(root, out)
            shutil.copytree(before_replacement, root)

        def youtube_argv(root: Path, out: Path) -> list[str]:
            return ["download", "k700", "--split", "val", "--root", str(root),
                    "--mirror", yt_server.url, "--source", "youtube", "--rate", "50",
                    "--youtube-url-template", yt_server.url + "youtube/{youtube_id}.mp4",
                    "--no-progress"]  # fmt: skip

        stages = [
            Stage("download", download_argv, fresh,
                  lambda t, r, o, w: check_download(t, mirror, r, "train", w),
                  lambda r, o: r),
            Stage("replacement", download_argv, at_replacement,
                  lambda t, r, o, w: check_download(t, mirror, r, "train", w),
                  lambda r, o: r),
            Stage("verify", lambda r, o: ["verify", str(r), "--deep", "--no-progress"],
                  unverified, check_verify, lambda r, o: r),
            Stage("process", lambda r, o: ["process", str(r), "--out", str(o), "--short-side",
                                           "32", "--no-progress"],
                  copy_finished, check_derived, lambda r, o: o),
            Stage("frames", lambda r, o: ["frames", str(r), "--out", str(o), "--no-progress"],
                  copy_finished, check_derived, lambda r, o: o),
            Stage("youtube", youtube_argv, fresh,
                  lambda t, r, o, w: check_youtube(t, yt_mirror, r, w, sourced),
                  lambda r, o: r),
        ]  # fmt: skip
        phase_walls: dict[str, float] = {}
        if "kills" in parts:
            for stage in stages:
                if args.stages and stage.name not in args.stages.split(","):
                    continue
                t0 = time.monotonic()
                kill_trials(tally, stage, args.kills, work / stage.name, env, rng)
                phase_walls[f"kill -9 {stage.name}"] = time.monotonic() - t0
        if "network" in parts:
            t0 = time.monotonic()
            network_trials(tally, mirror, server, args.network, work / "net", rng)
            phase_walls["network faults"] = time.monotonic() - t0
        if "hostile" in parts:
            t0 = time.monotonic()
            hostile_trials(tally, mirror, work / "hostile", env)
            phase_walls["hostile archives"] = time.monotonic() - t0
        if "readonly" in parts:
            readonly_trial(tally, finished, work / "readonly", env)
        if "enospc" in parts:
            t0 = time.monotonic()
            enospc_trials(tally, mirror, server, work / "enospc", env)
            phase_walls["ENOSPC"] = time.monotonic() - t0
        if "damage" in parts:
            t0 = time.monotonic()
            damage_trials(tally, finished, work / "damage", env)
            phase_walls["manifest damage"] = time.monotonic() - t0
    wall = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (children.ru_utime + children.ru_stime) - (children0.ru_utime + children0.ru_stime)
    print()
    for name, seconds in phase_walls.items():
        print(f"  {name:<20} {seconds:7.1f} s")
    print()
    header = ("trials", "faults", "corrupt accepted", "data lost", "hangs", "orphans",
              "leftovers", "unclear errors", "worst time to a clear error")  # fmt: skip
    values = (tally.trials, tally.faults, tally.corrupt, tally.lost, tally.hangs, tally.orphans,
              tally.leftovers, tally.unclear, f"{tally.worst_error:.1f} s")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    print("| " + " | ".join(str(v) for v in values) + " |")
    print(f"\nwall {wall:.0f} s, this process {time.process_time() - cpu0:.0f} CPU-s, its "
          f"subprocesses {child_cpu:.0f} CPU-s, load at start {load[0]:.1f}, at end "
          f"{os.getloadavg()[0]:.1f}, seed {args.seed}, work {work}")  # fmt: skip
    print(f"trials by kind: {dict(tally.kinds)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    bad = tally.corrupt + tally.lost + tally.hangs + tally.orphans + tally.leftovers + tally.unclear
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
