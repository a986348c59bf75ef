"""``kinetix mirror build|serve``: a synthetic CVDF mirror for offline pipeline tests."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kinetix.errors import ConfigError

if TYPE_CHECKING:
    from kinetix.synthetic.mirror import MirrorSpec


_SIZE = re.compile(r"^(\d+)x(\d+)$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mirror",
        help="build or serve a synthetic CVDF mirror (real annotation rows, generated videos)",
        description="A local stand-in for the CVDF Kinetics mirror, for testing pipelines "
        "offline. The annotation rows are real; every video is SYNTHETIC.",
    )
    verbs = p.add_subparsers(dest="mirror_command", metavar="VERB", required=True)

    b = verbs.add_parser(
        "build",
        help="generate a mirror in DIR",
        description="Pick clips from the real annotation files, generate a tiny video for "
        "each and lay them out exactly like CVDF (shards, path lists, annotations, the K400 "
        "replacement archive, DeepMind's K700 archive). DIR/mirror.json lists every clip.",
    )
    b.add_argument("root", metavar="DIR", type=Path, help="new or empty folder (or a mirror)")
    b.add_argument(
        "--release",
        action="append",
        dest="releases",
        metavar="NAME",
        help="release to include, repeatable (default: all with real rows for the splits)",
    )
    b.add_argument(
        "--split",
        action="append",
        dest="splits",
        metavar="NAME",
        help="split of every release, repeatable (default: val)",
    )
    b.add_argument("--classes", type=int, help="classes per release/split (default 4)")
    b.add_argument(
        "--class",
        action="append",
        dest="class_names",
        metavar="LABEL",
        help="a class to include first (raw label), repeatable; every chosen release must have it",
    )
    b.add_argument("--clips-per-class", type=int, help="default 3")
    b.add_argument("--shard-size", type=int, help="clips per K400 part (default 6)")
    b.add_argument(
        "--corrupted",
        type=int,
        help="K400 clips truncated in the parts, good copy in the replacement tgz (default 1)",
    )
    b.add_argument("--missing", type=int, help="annotated clips in no shard (default 1)")
    b.add_argument(
        "--no-anomalies",
        action="store_true",
        help="no plain-tar K400 shard and no AppleDouble '._' members",
    )
    b.add_argument(
        "--youtube-sources",
        type=int,
        nargs="?",
        const=4,
        metavar="N",
        help="also write full-length youtube/{id}.mp4 for up to N clips per "
        "release/split (default N: 4)",
    )
    b.add_argument(
        "--source-max-end",
        type=int,
        help="prefer clips ending by this second for source videos",
    )
    b.add_argument("--size", metavar="WxH", help="video size (default 64x80)")
    b.add_argument("--fps", type=int, help="default 10; keyframe every second")
    b.add_argument(
        "--bitrate",
        metavar="RATE",
        help="video bitrate, e.g. 1M (implies --pattern noise)",
    )
    b.add_argument(
        "--pattern",
        choices=("index", "testsrc", "noise"),
        help="frame content (default: index, or noise with --bitrate)",
    )
    b.add_argument("--no-audio", action="store_true")
    b.add_argument(
        "--clip-duration",
        type=float,
        metavar="S",
        help="seconds per clip (default: the annotation's span)",
    )
    b.add_argument(
        "--downstream-clips",
        type=int,
        metavar="N",
        help="with k700-2020: put the clips of N AVA-Kinetics and N Countix rows per split "
        "in its shards (their tarballs are always written; default 0)",
    )
    b.add_argument("--seed", type=int, help="picks other clips (default 0)")
    b.add_argument("--workers", type=int, help="parallel ffmpeg/tar jobs (default 2)")
    b.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="real annotation folder (default: $KINETIX_SHARED_DATA, "
        "../shared/data/kinetics, else the packaged excerpts)",
    )
    b.set_defaults(func=run_build)

    s = verbs.add_parser(
        "serve",
        help="serve a mirror over HTTP until Ctrl-C",
        description="Serve DIR with Range, ETag and keep-alive; pass the printed URL to "
        "'kinetix download --mirror'.",
    )
    s.add_argument("root", metavar="DIR", type=Path)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 picks a free port")
    s.add_argument(
        "--per-connection-rate",
        type=float,
        default=None,
        metavar="MB/s",
        help="cap each TCP connection, like a CDN",
    )
    s.add_argument(
        "--total-rate", type=float, default=None, metavar="MB/s", help="cap the whole server"
    )
    s.set_defaults(func=run_serve)


def build_spec(args: argparse.Namespace) -> MirrorSpec:
    """The ``MirrorSpec`` the flags describe; unset flags keep the spec's defaults."""
    from kinetix.synthetic.mirror import DEFAULT_VIDEO, MirrorSpec, releases_for

    video: dict[str, object] = {}
    if args.size is not None:
        match = _SIZE.match(args.size)
        if not match:
            raise ConfigError(f"--size must look like 340x256, got {args.size!r}")
        video.update(width=int(match.group(1)), height=int(match.group(2)))
    if args.fps is not None:
        video.update(fps=args.fps, gop=args.fps)
    if args.bitrate is not None:
        video.update(bitrate=args.bitrate, pattern="noise")  # flat frames ignore a bitrate
    if args.pattern is not None:
        video.update(pattern=args.pattern)
    if args.no_audio:
        video.update(audio=False)
    releases = releases_for(args.releases, args.splits or ("val",))
    fields: dict[str, object] = {"releases": releases, "video": DEFAULT_VIDEO.with_(**video)}
    if args.class_names:
        fields["class_names"] = {name: tuple(args.class_names) for name in releases}
    if args.no_anomalies:
        fields.update(plain_tar_shard=False, appledouble=False)
    for flag, name in _SPEC_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            fields[name] = value
    return MirrorSpec(**fields)  # type: ignore[arg-type]


_SPEC_FLAGS = {
    "classes": "classes",
    "clips_per_class": "clips_per_class",
    "shard_size": "shard_size",
    "corrupted": "corrupted",
    "missing": "missing",
    "youtube_sources": "source_videos",
    "source_max_end": "source_max_end",
    "clip_duration": "clip_duration",
    "seed": "seed",
    "downstream_clips": "downstream_clips",
    "workers": "workers",
    "data": "data_dir",
}


def run_build(args: argparse.Namespace) -> int:
    from kinetix.synthetic.mirror import build_mirror

    index = build_mirror(args.root, build_spec(args))
    print(f"built a SYNTHETIC Kinetics mirror (generated videos) at {index.root}")
    print(f"  annotation rows from {index.data_source}")
    for name, split in index.splits.items():
        extra = []
        if split.missing:
            extra.append(f"{len(split.missing)} missing")
        if split.corrupted:
            extra.append(f"{len(split.corrupted)} corrupted (good copy in the replacement tgz)")
        sources = sum(1 for c in split.clips.values() if c.source_video)
        if sources:
            extra.append(f"{sources} with youtube/ source videos")
        count = len(split.shards)
        where = f"{count} shard{'s' * (count != 1)}" if split.path_list else split.annotations
        note = f" ({', '.join(extra)})" if extra else ""
        print(f"  {name}: {len(split.clips)} clips in {where}{note}")
    for name, info in index.downstream.items():
        generated = f" (generated: {', '.join(info['generated'])})" if info["generated"] else ""
        print(f"  {name}: {info['archive']}{generated}")
    size = sum(f.size for f in index.files.values())
    print(f"  {len(index.files)} files, {size / 1e6:.1f} MB; index: {index.root / 'mirror.json'}")
    print(f"serve it with: kinetix mirror serve {index.root}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from kinetix.synthetic.mirror import INDEX_NAME
    from kinetix.synthetic.server import MirrorServer

    root = args.root
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; build one with 'kinetix mirror build {root}'")
    for flag, value in (
        ("--per-connection-rate", args.per_connection_rate),
        ("--total-rate", args.total_rate),
    ):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be > 0 MB/s, got {value}")
    server = MirrorServer(
        root,
        host=args.host,
        port=args.port,
        per_connection_bps=args.per_connection_rate * 1e6 if args.per_connection_rate else None,
        total_bps=args.total_rate * 1e6 if args.total_rate else None,
    )
    server.start()
    kind = "a SYNTHETIC Kinetics mirror (generated videos, real annotation rows)"
    if not (root / INDEX_NAME).exists():
        kind = "a folder that is not a kinetix mirror (no mirror.json)"
    print(f"serving {kind}")
    print(f"  from {server.root}")
    print(f"  at   {server.url}")
    print(f"use:   kinetix download ... --mirror {server.url}")
    print("Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.stop()
    return 0
