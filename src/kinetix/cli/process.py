"""``kinetix process DIR --out DIR2``: a resized / re-timed / re-encoded copy of a video root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinetix.cli.common import add_derive_flags, emit_stderr, executor_from, print_dry_run
from kinetix.config import X264_PRESETS, ProcessConfig, VideoCodec
from kinetix.process.derived import DerivedReport

_DEFAULTS = ProcessConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process",
        help="derive a resized / re-encoded copy of a root (like mmaction2's kinetics400_256)",
        description="Re-encode every present, not-bad clip of DIR into --out with the same "
        "layout and its own manifest: short side N keeping aspect ratio (even sizes, no "
        "upscaling unless asked), optional fps change. Parallel, resumable (rerun the same "
        "command), atomic per clip; a clip that fails is recorded and the run goes on.",
    )
    p.add_argument("root", metavar="DIR", help="source video root")
    p.add_argument("--out", required=True, metavar="DIR2", help="where the derived root goes")
    p.add_argument(
        "--short-side",
        type=int,
        default=_DEFAULTS.short_side,
        metavar="N",
        help=f"shorter side in pixels (default {_DEFAULTS.short_side}; 0 keeps the size)",
    )
    p.add_argument("--upscale", action="store_true", help="also enlarge clips smaller than N")
    p.add_argument("--fps", type=float, metavar="N", help="change the frame rate (default: keep)")
    p.add_argument(
        "--crf", type=int, default=_DEFAULTS.crf, help=f"quality (default {_DEFAULTS.crf})"
    )
    p.add_argument("--preset", choices=X264_PRESETS, default=_DEFAULTS.preset)
    p.add_argument("--codec", choices=[c.value for c in VideoCodec], default=_DEFAULTS.codec.value)
    p.add_argument("--no-audio", action="store_true", help="drop the audio track")
    add_derive_flags(p)
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> ProcessConfig:
    return ProcessConfig(
        short_side=args.short_side or None,
        fps=args.fps,
        upscale=args.upscale,
        crf=args.crf,
        preset=args.preset,
        codec=VideoCodec(args.codec),
        audio=not args.no_audio,
        threads=args.threads,
        workers=args.workers,
        executor=executor_from(args),
        retry_failed=args.retry_failed,
    )


def run(args: argparse.Namespace) -> int:
    from kinetix.process.transcode import process_dataset

    config = config_from(args)
    if config.executor.dry_run:
        print_dry_run(config.executor, config.workers, Path(args.out))
        return 0
    r = process_dataset(args.root, args.out, config, emit=None if args.no_progress else emit_stderr)
    print(
        f"process {r.source} -> {r.out}: {r.done} clips made ({r.rate:.1f} clips/s, "
        f"{human_size(r.bytes_written)}), {r.skipped} skipped (done before), {r.redone} redone"
    )
    print_failures(r)
    for error in r.errors:
        print(f"kinetix: error: {error}", file=sys.stderr)
    return 1 if r.errors else 0


def human_size(n: float) -> str:
    """``512 B``, ``3.4 MB``, ``1.2 TB``: frames uses it too."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def print_failures(r: DerivedReport) -> None:
    """Failed clips by reason; frames uses it too."""
    if r.failed:
        reasons = ", ".join(f"{code} {n}" for code, n in r.failed.most_common())
        print(
            f"failed: {sum(r.failed.values())} clips ({reasons}); each is recorded in the manifest"
        )
    if r.failed_before:
        print(f"{r.failed_before} clips failed in an earlier run and were not retried "
              "(their source is unchanged; --retry-failed retries them)")  # fmt: skip
