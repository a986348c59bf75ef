"""Shard download rate against a bandwidth-capped local mirror: kinetix, one connection, wget, curl.

    python benchmarks/bench_transfer.py [--files 8] [--size-mb 50] [--total-mbps 60]

Serves N gzip shards from a mirror in a separate process, with a total cap (the "link") and a
per-connection cap (a CDN where one connection cannot fill the link), then downloads them
``--parallel`` at a time while a thread per shard reads and inflates the bytes as they land.
Prints the achieved rate as a fraction of the link cap, and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _mirror_process import MirrorProcess
from isal import isal_zlib

from kinetix.config import TransferConfig
from kinetix.transfer.shard import ShardDownload

MB = 1_000_000


def make_shards(folder: Path, count: int, size_mb: int) -> list[str]:
    """One gzip of random bytes (incompressible, so its size is what is sent), copied N times."""
    first = folder / "shard-000.tar.gz"
    with gzip.open(first, "wb", compresslevel=1) as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    names = [first.name]
    for i in range(1, count):
        name = f"shard-{i:03d}.tar.gz"
        shutil.copyfile(first, folder / name)
        names.append(name)
    return names


def inflate(stream: object) -> int:
    """Read and inflate a gzip stream to nowhere, as extraction would; returns output bytes."""
    inflater = isal_zlib.decompressobj(wbits=31)
    produced = 0
    read = stream.read  # type: ignore[attr-defined]
    while chunk := read(1 << 20):
        produced += len(inflater.decompress(chunk))
    return produced


def run_kinetix(base: str, names: list[str], work: Path, parallel: int, connections: int) -> float:
    config = TransferConfig(connections=connections)

    def one(name: str) -> None:
        part = work / (name + ".part")
        with ShardDownload(base + name, part, config) as download:
            inflate(download.reader())
            download.finish()
        part.unlink()

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, names))
    return time.perf_counter() - started


def run_peer(tool: str, base: str, names: list[str], work: Path, parallel: int) -> float:
    argv = {
        "wget": ["wget", "-q", "-O"],
        "curl": ["curl", "-sS", "-o"],
    }[tool]

    def one(name: str) -> None:
        out = work / name
        subprocess.run([*argv, str(out), base + name], check=True)
        out.unlink()

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, names))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=4, help="shards at once")
    parser.add_argument("--connections", type=int, default=8, help="Range connections per shard")
    parser.add_argument("--total-mbps", type=float, default=60.0, help="link cap, MB/s")
    parser.add_argument(
        "--per-connection-mbps", type=float, default=None, help="default: link cap / connections"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip wget and curl")
    args = parser.parse_args()
    per_connection = args.per_connection_mbps or args.total_mbps / args.connections

    with tempfile.TemporaryDirectory(prefix="kinetix-bench-") as tmp:
        served, work = Path(tmp) / "mirror", Path(tmp) / "work"
        served.mkdir()
        work.mkdir()
        names = make_shards(served, args.files, args.size_mb)
        total_bytes = sum((served / n).stat().st_size for n in names)
        server = MirrorProcess(
            served, per_connection_bps=per_connection * MB, total_bps=args.total_mbps * MB
        ).start()
        base = server.url
        cap = args.total_mbps * MB
        print(
            f"{args.files} shards x {total_bytes / args.files / MB:.1f} MB, {args.parallel} at a "
            f"time; link cap {args.total_mbps:g} MB/s, {per_connection:g} MB/s per connection"
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results: dict[str, float] = {}
        try:
            runs: list[tuple[str, int]] = [
                (f"kinetix {args.connections} connections + inflate", args.connections),
                ("kinetix 1 connection + inflate", 1),
            ]
            for label, connections in runs:
                seconds = run_kinetix(base, names, work, args.parallel, connections)
                results[label] = total_bytes / seconds
            peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            if not args.no_peers:
                for tool in ("wget", "curl"):
                    if shutil.which(tool):
                        seconds = run_peer(tool, base, names, work, args.parallel)
                        results[f"{tool} (1 connection per file)"] = total_bytes / seconds
        finally:
            server.stop()
        ours = next(iter(results.values()))
        for label, rate in results.items():
            print(
                f"{label:38s} {rate / MB:6.1f} MB/s  {rate / cap:5.2f} of link cap  "
                f"kinetix/this = {ours / rate:4.2f}"
            )
        print(
            f"peak RSS of the downloading process: {peak_rss / 1024:.0f} MB "
            f"(before downloads: {rss_before / 1024:.0f} MB)"
        )


if __name__ == "__main__":
    main()
