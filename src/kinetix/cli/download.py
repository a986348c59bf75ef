"""``kinetix download RELEASE --split S``: fetch a split from CVDF and/or YouTube into a root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinetix.catalog.labels import LabelStyle
from kinetix.cli.common import (
    add_executor_flags,
    add_selection_flags,
    emit_stderr,
    executor_from,
    print_dry_run,
    selection_from,
    size_flag,
)
from kinetix.config import (
    DownloadConfig,
    FramesConfig,
    ProcessConfig,
    SourceKind,
    TransferConfig,
    TrimMode,
    VideoCodec,
    YoutubeConfig,
    default_of,
)
from kinetix.errors import ConfigError
from kinetix.sizes import format_size

_PROCESS, _FRAMES = ProcessConfig(), FramesConfig()
_TRANSFER = TransferConfig()
_YOUTUBE = YoutubeConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="fetch a release split into a dataset root (CVDF shards, YouTube, or both)",
        description="Fetch the selected clips of RELEASE/SPLIT into --root, resumably: CVDF "
        "tar.gz shards over several Range connections, extracted while they download; "
        "YouTube clip by clip with yt-dlp. Rerun the same command to resume.",
    )
    p.add_argument(
        "release",
        help="k400, k600, k700, k700-2020, or countix / ava-kinetics (the K700-2020 clips their "
        "rows need)",
    )
    p.add_argument("--split", required=True, help="train, val, test (holdout_test for k600)")
    p.add_argument("--root", type=Path, default=Path("kinetics"), help="dataset root directory")
    add_selection_flags(p)
    p.add_argument(
        "--source",
        choices=[s.value for s in SourceKind],
        default=default_of(DownloadConfig, "source"),
        help="cvdf, youtube, or auto: CVDF first, YouTube for what is still missing",
    )
    p.add_argument(
        "--layout",
        choices=[s.value for s in LabelStyle],
        default=default_of(DownloadConfig, "layout"),
        help="label folder names: raw, underscore, torchvision",
    )
    p.add_argument("--mirror", metavar="URL", help="base URL standing in for the CVDF bucket")
    p.add_argument(
        "--annotations",
        type=Path,
        metavar="FILE",
        help="use this annotation file (countix / ava-kinetics: the set's CSV)",
    )
    p.add_argument(
        "--base-annotations",
        type=Path,
        metavar="FILE",
        help="countix / ava-kinetics: the K700-2020 annotation file their rows resolve against "
        "(CVDF's or DeepMind's; default: fetched)",
    )
    p.add_argument("--offline", action="store_true", help="use cached annotation files only")
    p.add_argument(
        "--retry-failed",
        nargs="?",
        const="",
        metavar="REASONS",
        help="retry failed clips too (all, or only these comma-separated reasons)",
    )
    t = p.add_argument_group("transfer")
    t.add_argument(
        "--connections", type=int, default=_TRANSFER.connections, help="Range connections per shard"
    )
    t.add_argument(
        "--parallel",
        "--workers",
        type=int,
        default=default_of(DownloadConfig, "parallel"),
        dest="parallel",
        help="shards/clips at once",
    )
    t.add_argument(
        "--piece-size",
        type=size_flag("--piece-size"),
        default=format_size(_TRANSFER.piece_size),
        metavar="SIZE",
        help="Range piece per request at most (smaller for a file under 16 pieces a connection, "
        "not below 256 KiB, so a streamed shard extracts as it lands); the resume granularity; "
        "K/M/G/KiB.. are powers of 1024, "
        "KB/MB/GB powers of 1000",
    )
    t.add_argument(
        "--max-clip-size",
        type=size_flag("--max-clip-size"),
        default=format_size(int(default_of(DownloadConfig, "max_clip_bytes"))),  # type: ignore[call-overload]
        metavar="SIZE",
        help="refuse shard members declaring more than this",
    )
    t.add_argument(
        "--timeout",
        type=float,
        default=_TRANSFER.timeout,
        metavar="SECONDS",
        help="a connection silent (or below --min-rate) this long is stalled: dropped and "
        "retried, twice at most (default %(default)g)",
    )
    t.add_argument(
        "--min-rate",
        type=size_flag("--min-rate"),
        default=format_size(_TRANSFER.min_rate),
        metavar="SIZE",
        help="minimum bytes/s per connection over each --timeout window",
    )
    t.add_argument("--keep-archives", action="store_true", help="keep the shard archives")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every selected clip is present at the end (by default clips no "
        "source has, e.g. unavailable or not_in_shard, are reported and the exit code is 0)",
    )
    t.add_argument("--no-progress", action="store_true", help="no bars or progress lines")
    f = p.add_argument_group(
        "processing as clips land (the root then holds the processed clips or frame folders)"
    )
    f.add_argument(
        "--short-side",
        type=int,
        metavar="N",
        help="resize each clip to short side N (YouTube: also pick a format at least N high)",
    )
    f.add_argument("--fps", type=float, metavar="F", help="re-time each clip to F frames/s")
    f.add_argument("--codec", choices=[c.value for c in VideoCodec], help="re-encode with this")
    f.add_argument(
        "--crf", type=int, default=_PROCESS.crf, help="x264/x265 quality (default %(default)s)"
    )
    f.add_argument(
        "--frames", action="store_true", help="write img_00001.jpg frame folders, not clips"
    )
    f.add_argument(
        "--quality", type=int, default=_FRAMES.quality, help="--frames: JPEG -q:v (2 best .. 31)"
    )
    f.add_argument(
        "--keep-originals",
        action="store_true",
        help="also keep each clip as fetched, under ROOT/originals/",
    )
    y = p.add_argument_group("youtube")
    y.add_argument(
        "--trim",
        choices=[m.value for m in TrimMode],
        default=_YOUTUBE.trim.value,
        help="exact: re-encode from the annotated start; fast: stream copy from a keyframe",
    )
    y.add_argument("--no-audio", action="store_true", help="drop the audio track")
    y.add_argument("--cookies", type=Path, metavar="FILE", help="Netscape cookies file")
    y.add_argument("--cookies-from-browser", metavar="BROWSER", help="e.g. firefox, chrome")
    y.add_argument("--proxy", metavar="URL")
    y.add_argument(
        "--rate", type=float, default=_YOUTUBE.rate, help="requests per second, all workers"
    )
    y.add_argument(
        "--margin", type=float, default=_YOUTUBE.margin, help="seconds fetched past the clip's end"
    )
    y.add_argument(
        "--youtube-url-template",
        metavar="TEMPLATE",
        help="URL with {youtube_id} (e.g. a local mirror of source videos)",
    )
    add_executor_flags(p)
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> DownloadConfig:
    youtube_kwargs = {}
    if args.youtube_url_template:
        youtube_kwargs["url_template"] = args.youtube_url_template
    process = frames = None
    audio = not args.no_audio
    if args.frames:
        frames = FramesConfig(fps=args.fps, short_side=args.short_side, quality=args.quality)
        if args.codec is not None:
            raise ConfigError("--codec applies to clips, not --frames")
    elif args.short_side is not None or args.fps is not None or args.codec is not None:
        process = ProcessConfig(
            short_side=args.short_side, fps=args.fps, crf=args.crf, audio=audio,
            codec=VideoCodec(args.codec or VideoCodec.H264.value),
        )  # fmt: skip
    retry = None
    if args.retry_failed is not None:
        retry = tuple(r.strip() for r in args.retry_failed.split(",") if r.strip())
    return DownloadConfig(
        root=args.root,
        release=args.release,
        split=args.split,
        selection=selection_from(args),
        source=SourceKind(args.source),
        layout=LabelStyle.parse(args.layout),
        mirror=args.mirror,
        parallel=args.parallel,
        keep_archives=args.keep_archives,
        transfer=TransferConfig(
            connections=args.connections,
            piece_size=args.piece_size,
            timeout=args.timeout,
            min_rate=args.min_rate,
        ),
        youtube=YoutubeConfig(
            trim=TrimMode(args.trim),
            short_side=args.short_side,
            audio=not args.no_audio,
            cookies=args.cookies,
            cookies_from_browser=args.cookies_from_browser,
            proxy=args.proxy,
            rate=args.rate,
            margin=args.margin,
            **youtube_kwargs,
        ),
        retry_failed=retry,
        progress=not args.no_progress,
        executor=executor_from(args),
        annotations=args.annotations,
        base_annotations=args.base_annotations,
        offline=args.offline,
        max_clip_bytes=args.max_clip_size,
        process=process,
        frames=frames,
        keep_originals=args.keep_originals,
    )


def run(args: argparse.Namespace) -> int:
    from kinetix.download import download

    config = config_from(args)
    if config.executor.dry_run:
        print_dry_run(config.executor, config.parallel, config.root)
        return 0
    report = download(config, emit=emit_stderr)
    placed = sum(report.placed.values())
    sources = ", ".join(f"{src} {n}" for src, n in report.placed.most_common())
    print(
        f"{report.release} {report.split}: {report.selected} selected, "
        f"{report.already_present} already present, {placed} fetched"
        + (f" ({sources})" if sources else "")
        + f", {report.bytes_transferred / 1e6:.1f} MB transferred in {report.seconds:.1f} s"
    )
    if report.quarantined:
        print(
            "quarantined (the source's copy failed the check, kept in .kinetix/quarantine/): "
            + ", ".join(f"{code} {n}" for code, n in report.quarantined.most_common())
        )
    if report.failed:
        print("failed: " + ", ".join(f"{code} {n}" for code, n in report.failed.most_common()))
    rows = report.downstream
    if rows is not None:
        print(
            f"{rows.release} {rows.split}: {rows.rows} annotation rows, {rows.present} with "
            "their clip present"
            + (
                "; not present: " + ", ".join(f"{why} {n}" for why, n in rows.reasons().items())
                if rows.not_present()
                else ""
            )
        )
    for error in report.errors:
        print(f"kinetix: error: {error}", file=sys.stderr)
    if report.errors:
        print(
            f"kinetix: {len(report.errors)} shard(s) failed; everything already placed is kept. "
            "Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 1
    if args.strict and report.not_present:
        # the run itself succeeded; --strict also asks that every selected clip be there
        reasons = ", ".join(f"{code} {n}" for code, n in report.failed.most_common())
        print(
            f"kinetix: error: --strict: {report.not_present} of {report.selected} selected "
            "clips are not present"
            + (f" ({reasons})" if reasons else "")
            + f"; see 'kinetix status {config.root}'",
            file=sys.stderr,
        )
        return 1
    return 0
