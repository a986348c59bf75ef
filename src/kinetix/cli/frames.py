"""``kinetix frames DIR --out FRAMES``: ``img_00001.jpg`` folders (and audio.wav) per clip."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinetix.cli.common import add_derive_flags, emit_stderr, executor_from, print_dry_run
from kinetix.cli.process import human_size, print_failures
from kinetix.config import AudioConfig, FramesConfig, JpegEncoder

_DEFAULTS = FramesConfig()
_AUDIO = AudioConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "frames",
        help="extract raw frames (img_00001.jpg ...) per clip, as mmaction2/PaddleVideo read",
        description="Write FRAMES/{split}/{label}/{key}/img_00001.jpg (1-based) for every "
        "present, not-bad clip of DIR, with frame counts in FRAMES' own manifest. Resumable "
        "per clip (a folder appears only when complete; one with missing frames is redone); "
        "the disk space the run needs is estimated from the first clips before the rest.",
    )
    p.add_argument("root", metavar="DIR", help="source video root")
    p.add_argument("--out", required=True, metavar="FRAMES", help="where the frame folders go")
    p.add_argument("--fps", type=float, metavar="N", help="frames per second (default: all)")
    p.add_argument("--short-side", type=int, metavar="N", help="resize, keeping aspect ratio")
    p.add_argument("--upscale", action="store_true", help="also enlarge clips smaller than N")
    p.add_argument(
        "--quality",
        type=int,
        default=_DEFAULTS.quality,
        help=f"JPEG quality, 2 (best) to 31 (default {_DEFAULTS.quality})",
    )
    p.add_argument(
        "--encoder",
        default=_DEFAULTS.encoder.value,
        choices=[e.value for e in JpegEncoder],
        help="who writes the JPEGs: ffmpeg (the same JPEGs as `ffmpeg -q:v N`), turbo "
        "(PyAV + libjpeg-turbo: faster, equal PSNR, ~25%% larger files), auto (= ffmpeg); "
        f"default {_DEFAULTS.encoder.value}",
    )
    p.add_argument("--audio", action="store_true", help="also write audio.wav in each folder")
    p.add_argument("--audio-rate", type=int, default=_AUDIO.sample_rate, metavar="HZ")
    p.add_argument("--audio-channels", type=int, default=_AUDIO.channels, choices=(1, 2))
    add_derive_flags(p)
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> FramesConfig:
    audio = AudioConfig(args.audio_rate, args.audio_channels) if args.audio else None
    return FramesConfig(
        fps=args.fps,
        short_side=args.short_side,
        upscale=args.upscale,
        quality=args.quality,
        encoder=args.encoder,
        audio=audio,
        threads=args.threads,
        workers=args.workers,
        executor=executor_from(args),
        retry_failed=args.retry_failed,
    )


def run(args: argparse.Namespace) -> int:
    from kinetix.process.frames import extract_dataset

    config = config_from(args)
    if config.executor.dry_run:
        print_dry_run(config.executor, config.workers, Path(args.out))
        return 0
    r = extract_dataset(args.root, args.out, config, emit=None if args.no_progress else emit_stderr)
    fps = r.frames / r.seconds if r.seconds > 0 else 0.0
    print(
        f"frames {r.source} -> {r.out}: {r.done} clips extracted ({r.frames} frames, "
        f"{fps:.0f} frames/s, {human_size(r.bytes_written)}), {r.skipped} skipped "
        f"(done before), {r.redone} redone"
    )
    print_failures(r)
    for error in r.errors:
        print(f"kinetix: error: {error}", file=sys.stderr)
    return 1 if r.errors else 0
