"""download, verify and frames of two kinetix checkouts, interleaved in one run (a refactor's cost).

    python benchmarks/bench_stages_ab.py --base REV [--head REV] [--rounds 3] [--shards 2]
        [--clips-per-shard 12] [--stages download,verify,frames] [--workdir DIR]

Each checkout (``git worktree`` of REV under the work folder; ``--head`` defaults to this
checkout) runs as ``python -m kinetix.cli.main`` with its own ``src/`` first on ``PYTHONPATH``
(checked: the stage's ``kinetix.__file__`` is printed). Per round, the order of the two is
swapped; each runs, into empty folders, ``download k400 --split val`` from a synthetic CVDF
mirror served by its own process (uncapped, on 127.0.0.1), then ``verify --deep`` of
that root, then ``frames`` of it. Printed per stage and checkout: median CPU seconds of the
process tree (user+sys, GNU time) with min-max, median wall, and head/base of the CPU medians.
CPU seconds are the figure to trust on a shared machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _mirror_process import MirrorProcess
from bench_download import Measured, loadavg, run_measured
from bench_pipeline import VIDEO

from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, build_mirror_into

STAGES = ("download", "verify", "frames")
HERE = Path(__file__).resolve().parent.parent


def checkout(rev: str, work: Path) -> Path:
    """A worktree of ``rev`` (made once) whose ``src/`` the runs import."""
    sha = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = work / f"tree-{sha[:10]}"
    if not (tree / "src" / "kinetix").is_dir():
        subprocess.run(
            ["git", "-C", str(HERE), "worktree", "add", "--detach", str(tree), sha],
            check=True,
            capture_output=True,
        )
    return tree


def mirror_for(shards: int, per_shard: int, work: Path) -> MirrorIndex:
    root = work / f"mirror-{shards}x{per_shard}"
    if (root / "mirror.json").exists():
        return MirrorIndex.load(root)
    clips = shards * per_shard
    classes = max(c for c in range(1, 9) if clips % c == 0 and clips // c >= 2)
    spec = MirrorSpec(
        releases={"k400": ("val",)}, classes=classes, clips_per_class=clips // classes,
        shard_size=per_shard, plain_tar_shard=False, appledouble=False, corrupted=0,
        missing=0, video=VIDEO, clip_duration=VIDEO.duration,
    )  # fmt: skip
    print(f"building {clips} clips in {shards} shards ...", file=sys.stderr, flush=True)
    return build_mirror_into(root, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the commit to compare against")
    ap.add_argument("--head", default=None, help="default: this checkout as it is")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--clips-per-shard", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--stages", default=",".join(STAGES), help="download (always), verify, frames")
    args = ap.parse_args()
    stages = [s for s in STAGES if s == "download" or s in args.stages.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-ab-"))
    work.mkdir(parents=True, exist_ok=True)
    trees = {"base": checkout(args.base, work)}
    trees["head"] = checkout(args.head, work) if args.head else HERE
    index = mirror_for(args.shards, args.clips_per_shard, work)
    log = work / "commands.log"
    runs: dict[tuple[str, str], list[Measured]] = {}
    with MirrorProcess(index.root) as server:
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            where = subprocess.run(
                [sys.executable, "-c", "import kinetix; print(kinetix.__file__)"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            print(f"{name}: {where}")
        print(f"load at start {loadavg()}; {os.cpu_count()} cores; mirror {server.url}")
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                env = {
                    **os.environ,
                    "PYTHONPATH": str(trees[name] / "src"),
                    "KINETIX_CACHE": str(work / f"cache-{name}"),
                }
                run = work / "run"
                shutil.rmtree(run, ignore_errors=True)
                run.mkdir()
                k = [sys.executable, "-m", "kinetix.cli.main"]
                argvs = {
                    "download": [*k, "download", "k400", "--split", "val", "--root",
                                 str(run / "root"), "--mirror", server.url, "--no-progress"],
                    "verify": [*k, "verify", str(run / "root"), "--deep",
                               "--no-progress"],
                    "frames": [*k, "frames", str(run / "root"), "--out", str(run / "frames"),
                               "--no-progress"],
                }  # fmt: skip
                for stage in stages:
                    m = run_measured(argvs[stage], log, env=env, server=server)
                    runs.setdefault((stage, name), []).append(m)
                    print(
                        f"round {r + 1} {name:4s} {stage:8s} cpu {m.cpu:6.2f} s  "
                        f"wall {m.wall:6.2f} s  load {loadavg()}",
                        flush=True,
                    )
    print(f"\nload at end {loadavg()}")
    print(f"{'stage':9s} {'checkout':8s} {'CPU-s median (min-max)':>26s} {'wall median':>12s}")
    for stage in stages:
        med = {}
        for name in trees:
            ms = runs[(stage, name)]
            cpu = [m.cpu for m in ms]
            med[name] = statistics.median(cpu)
            print(
                f"{stage:9s} {name:8s} {med[name]:10.2f} ({min(cpu):.2f}-{max(cpu):.2f})"
                f"{statistics.median(m.wall for m in ms):>16.2f}"
            )
        print(f"{stage:9s} head/base CPU {med['head'] / med['base']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
