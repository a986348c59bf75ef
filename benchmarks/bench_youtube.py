"""kinetix's YouTube source (exact and fast) vs the ActivityNet crawler's way, on a local mirror.

    python benchmarks/bench_youtube.py [--videos 4] [--clips 3] [--minutes 5] [--gop 250]
                                       [--margin 0.5] [--link-mbps 0]

Source videos stand in for YouTube uploads: ``--minutes`` long, 340x256, 25 fps, noise at
~1 Mbit/s (every frame distinct, so trims can be checked by matching pixels), a keyframe every
``--gop`` frames (250: 10 s), AAC audio; served by ``MirrorServer`` at ``youtube/{id}.mp4``
(capped at ``--link-mbps`` if given). For ``--clips`` seeded random 10 s clips per video,
each method runs first with one worker (per-clip bytes from the server's counters, wall time,
frame checks) and then with two (clips per minute):

1. kinetix exact: ``YoutubeSource`` with yt-dlp's ``download_ranges``, re-encoded trim;
2. kinetix fast: same fetch, stream-copied from the keyframe at or before the start;
3. kinetix exact with ``--margin`` (default 0.5 s) instead of the config default;
4. the ActivityNet crawler: GET the whole video, then
   ``ffmpeg -i SRC -ss S -t 10 -c:v libx264 -c:a copy -threads 1 OUT``, then delete SRC.

Bytes are compared with the bytes of the clip's span in the source (packets shown in
[start, end)) and with the least any decodable cut needs (from the keyframe at or before the
start). A clip's start error is the distance, in frames, between its first frame and the
source frame it should be (the best pixel match among nearby source frames); its duration
error is its frame count minus 250. The politeness gate is set wide open (1000 requests/s):
this measures the fetch and trim, not the rate limit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from kinetix.config import TrimMode, YoutubeConfig
from kinetix.process.ffmpeg import run_ffmpeg
from kinetix.sources.ratelimit import RequestGate
from kinetix.sources.youtube import YoutubeSource, YoutubeTask
from kinetix.synthetic.media import VideoSpec, make_video
from kinetix.synthetic.server import MirrorServer

FPS = 25
CLIP_SECONDS = 10
TARGET_BYTES = 1.5  # fetched / bytes of the clip's span in the source
MB = 1_000_000


def source_spec(minutes: float, gop: int) -> VideoSpec:
    return VideoSpec(
        duration=minutes * 60, fps=FPS, width=340, height=256, pattern="noise", bitrate="1M",
        gop=gop, audio=True,
    )  # fmt: skip


def build_sources(workdir: Path, count: int, spec: VideoSpec) -> dict[str, Path]:
    """``count`` source videos under ``workdir/…/youtube/{id}.mp4``, made once and cached."""
    key = hashlib.sha1(json.dumps([count, repr(spec)]).encode()).hexdigest()[:10]
    root = workdir / f"sources-{key}"
    videos = {}
    for i in range(count):
        youtube_id = f"-bench{i:05d}"  # 11 characters, starting with "-" like some real ids
        path = root / "youtube" / f"{youtube_id}.mp4"
        if not path.exists():
            print(f"making {path.name} ({spec.duration:g} s) ...", flush=True)
            make_video(path, spec.with_(comment=youtube_id))
        videos[youtube_id] = path
    return videos


@dataclass
class SourceIndex:
    """Every packet of a source video: when it is shown, how big it is, whether it is a key."""

    times: np.ndarray
    sizes: np.ndarray
    video: np.ndarray
    keys: np.ndarray

    @classmethod
    def read(cls, path: Path) -> SourceIndex:
        rows = []
        with av.open(str(path)) as container:
            for packet in container.demux():
                if packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                rows.append((t, packet.size, packet.stream.type == "video", packet.is_keyframe))
        arr = np.array(rows, dtype=object)
        return cls(
            arr[:, 0].astype(float), arr[:, 1].astype(int), arr[:, 2].astype(bool),
            arr[:, 3].astype(bool) & arr[:, 2].astype(bool),
        )  # fmt: skip

    def span_bytes(self, start: float, end: float) -> int:
        """Bytes of the packets shown in [start, end): the clip's span in the source."""
        return int(self.sizes[(self.times >= start) & (self.times < end)].sum())

    def keyframe_before(self, t: float) -> float:
        return float(self.times[self.keys & (self.times <= t + 1e-6)].max())

    def decodable_bytes(self, start: float, end: float) -> int:
        """The least a decodable cut needs: from the keyframe at or before ``start``."""
        return self.span_bytes(self.keyframe_before(start), end)


def gray_frames(path: Path, first: int, last: int) -> dict[int, np.ndarray]:
    """Source frames ``first..last`` (by index at FPS), as grey images."""
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(int(max(first - 1, 0) / FPS / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            index = round(float(frame.pts * stream.time_base) * FPS)
            if index > last:
                break
            if index >= first:
                frames[index] = frame.to_ndarray(format="gray").astype(np.float32)
    return frames


def clip_frames(path: Path) -> tuple[np.ndarray, int]:
    """The first frame (grey) and the frame count of a clip."""
    with av.open(str(path)) as container:
        first = None
        count = 0
        for frame in container.decode(video=0):
            if first is None:
                first = frame.to_ndarray(format="gray").astype(np.float32)
            count += 1
    assert first is not None
    return first, count


def start_error(source: Path, clip: Path, expected: int) -> tuple[int, int]:
    """(frames between the clip's first frame and ``expected``, the clip's frame count)."""
    first, count = clip_frames(clip)
    candidates = gray_frames(source, expected - 3, expected + 3)
    best = min(candidates, key=lambda i: float(np.mean((candidates[i] - first) ** 2)))
    return best - expected, count


@dataclass(frozen=True)
class Clip:
    youtube_id: str
    start: int

    @property
    def end(self) -> int:
        return self.start + CLIP_SECONDS

    @property
    def key(self) -> str:
        return f"{self.youtube_id}_{self.start:06d}_{self.end:06d}"


@dataclass
class Outcome:
    clip: Clip
    seconds: float
    fetched: int
    path: Path
    start_offset: float = 0.0


@dataclass
class Method:
    name: str
    run: Callable[[Clip, Path], Outcome]  # (clip, output folder) -> outcome; fetched filled later
    exact: bool = True
    rows: list[Outcome] = field(default_factory=list)
    clips_per_min: dict[int, float] = field(default_factory=dict)
    bytes_by_workers: dict[int, int] = field(default_factory=dict)


def kinetix_method(name: str, server: MirrorServer, trim: TrimMode, margin: float | None) -> Method:
    extra = {} if margin is None else {"margin": margin}
    config = YoutubeConfig(
        trim=trim, url_template=server.url + "youtube/{youtube_id}.mp4", rate=1000, **extra
    )

    sources: dict[Path, YoutubeSource] = {}

    def run(clip: Clip, out: Path) -> Outcome:
        # one source per output root, shared by the workers, as the download job does
        if out not in sources:
            sources[out] = YoutubeSource(out, config, gate=RequestGate(1000))
        source = sources[out]
        task = YoutubeTask(
            "bench", "train", clip.key, clip.youtube_id, clip.start, clip.end, "bench",
            f"train/bench/{clip.key}.mp4",
        )  # fmt: skip
        started = time.perf_counter()
        fields = source.run(task).updates[0].fields
        seconds = time.perf_counter() - started
        if fields["state"] != "present":
            why = f"{fields['error_code']}: {fields['error_message']}"
            raise RuntimeError(f"{name}: {clip.key}: {why}")
        return Outcome(clip, seconds, 0, out / fields["path"], fields["start_offset"])

    return Method(name, run, exact=trim is TrimMode.EXACT)


def crawler_method(server: MirrorServer) -> Method:
    """ActivityNet's Crawler/Kinetics/download.py: the whole video, then an output -ss re-encode."""

    def run(clip: Clip, out: Path) -> Outcome:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f"tmp-{clip.key}.mp4"
        dest = out / f"{clip.key}.mp4"
        started = time.perf_counter()
        url = server.url + f"youtube/{clip.youtube_id}.mp4"
        with urllib.request.urlopen(url) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
        run_ffmpeg(["-i", "file:" + str(tmp), "-ss", str(clip.start), "-t", str(CLIP_SECONDS),
                    "-c:v", "libx264", "-c:a", "copy", "-threads", "1", "-y",
                    "file:" + str(dest)])  # fmt: skip
        tmp.unlink()
        return Outcome(clip, time.perf_counter() - started, 0, dest)

    return Method("ActivityNet crawler (whole video + ffmpeg -ss)", run)


def run_method(
    method: Method, clips: list[Clip], server: MirrorServer, work: Path, workers: int
) -> None:
    out = work / f"{method.name.split()[0]}-{abs(hash(method.name)) % 10**6}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    server.reset_stats()
    started = time.perf_counter()
    if workers == 1:
        for clip in clips:
            before = server.stats.total_bytes
            outcome = method.run(clip, out)
            outcome.fetched = server.stats.total_bytes - before
            method.rows.append(outcome)
        method.bytes_by_workers[1] = server.stats.total_bytes
        method.clips_per_min[1] = 60 * len(clips) / (time.perf_counter() - started)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda c: method.run(c, out), clips))
    method.clips_per_min[workers] = 60 * len(clips) / (time.perf_counter() - started)
    method.bytes_by_workers[workers] = server.stats.total_bytes
    shutil.rmtree(out, ignore_errors=True)


def report(
    methods: list[Method], indexes: dict[str, SourceIndex], videos: dict[str, Path]
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    header = (
        f"{'method':48s} {'MB/clip':>8s} {'x span':>7s} {'x min':>6s} {'worst x':>7s} "
        f"{'s/clip':>7s} {'clips/min 1w':>12s} {'2w':>6s} {'start err':>9s} {'dur err':>7s}"
    )
    print()
    print(header)
    print("-" * len(header))
    for m in methods:
        ratios, ratios_min, start_errs, dur_errs = [], [], [], []
        for row in m.rows:
            idx = indexes[row.clip.youtube_id]
            ratios.append(row.fetched / idx.span_bytes(row.clip.start, row.clip.end))
            ratios_min.append(row.fetched / idx.decodable_bytes(row.clip.start, row.clip.end))
            expected = round((row.clip.start + row.start_offset) * FPS)
            err, count = start_error(videos[row.clip.youtube_id], row.path, expected)
            start_errs.append(err)
            if m.exact:
                dur_errs.append(count - CLIP_SECONDS * FPS)
        mb = statistics.mean(r.fetched for r in m.rows) / MB
        secs = statistics.mean(r.seconds for r in m.rows)
        worst_start = max(start_errs, key=abs)
        worst_dur = max(dur_errs, key=abs) if dur_errs else None
        print(
            f"{m.name:48s} {mb:8.2f} {statistics.mean(ratios):7.2f} "
            f"{statistics.mean(ratios_min):6.2f} {max(ratios):7.2f} {secs:7.2f} "
            f"{m.clips_per_min.get(1, 0):12.1f} {m.clips_per_min.get(2, 0):6.1f} "
            f"{worst_start:9d} {'' if worst_dur is None else worst_dur:>7}"
        )
        summary[m.name] = {
            "mb_per_clip": round(mb, 3),
            "fetched_over_span": [round(r, 3) for r in ratios],
            "fetched_over_decodable_min": [round(r, 3) for r in ratios_min],
            "seconds_per_clip": round(secs, 3),
            "clips_per_min": {w: round(v, 1) for w, v in m.clips_per_min.items()},
            "start_errors": start_errs,
            "duration_errors": dur_errs,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--clips", type=int, default=3, help="clips per video")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--gop", type=int, default=250, help="frames between keyframes")
    parser.add_argument("--margin", type=float, default=0.5, help="for the third method")
    parser.add_argument("--link-mbps", type=float, default=0.0, help="cap the mirror (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kinetix-bench-youtube"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    spec = source_spec(args.minutes, args.gop)
    videos = build_sources(args.workdir, args.videos, spec)
    indexes = {vid: SourceIndex.read(path) for vid, path in videos.items()}
    rng = random.Random(args.seed)
    last_start = int(spec.duration) - CLIP_SECONDS - 1
    clips = [Clip(vid, rng.randint(0, last_start)) for vid in videos for _ in range(args.clips)]
    work = args.workdir / "runs"
    root = next(iter(videos.values())).parents[1]
    total = args.link_mbps * MB / 8 if args.link_mbps else None
    sizes = [p.stat().st_size for p in videos.values()]
    print(
        f"{len(videos)} source videos of {spec.duration:g} s, "
        f"{statistics.mean(sizes) / MB:.1f} MB each, a keyframe every {args.gop} frames; "
        f"{len(clips)} clips of {CLIP_SECONDS} s; link cap "
        f"{f'{args.link_mbps:g} Mbit/s' if total else 'none'}"
    )
    with MirrorServer(root, total_bps=total) as server:
        methods = [
            kinetix_method("kinetix exact (config margin)", server, TrimMode.EXACT, None),
            kinetix_method("kinetix fast (config margin)", server, TrimMode.FAST, None),
            kinetix_method(
                f"kinetix exact (margin {args.margin:g} s)", server, TrimMode.EXACT, args.margin
            ),
            crawler_method(server),
        ]
        for workers in (1, 2):
            for m in methods:
                print(f"{m.name}, {workers} worker(s) ...", flush=True)
                run_method(m, clips, server, work, workers)
    load = os.getloadavg()
    summary = report(methods, indexes, videos)
    print(f"\nload average (1/5/15 min) at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    exact = summary["kinetix exact (config margin)"]
    crawler = summary["ActivityNet crawler (whole video + ffmpeg -ss)"]
    print()
    worst = max(exact["fetched_over_span"])
    print(f"target: fetched <= {TARGET_BYTES}x the span's bytes: kinetix exact worst {worst:.2f}x "
          f"({'met' if worst <= TARGET_BYTES else 'NOT met'} on every clip)")  # fmt: skip
    exact_ok = all(e == 0 for e in exact["start_errors"]) and all(
        abs(d) <= 1 for d in exact["duration_errors"]
    )
    print(f"target: exact start error 0 frames, duration error <= 1 frame on every clip: "
          f"{'met' if exact_ok else 'NOT met'}")  # fmt: skip
    print(f"kinetix exact vs crawler: {crawler['mb_per_clip'] / exact['mb_per_clip']:.0f}x fewer "
          f"bytes, {exact['clips_per_min'][1] / crawler['clips_per_min'][1]:.1f}x the clips/min "
          f"(1 worker), {exact['clips_per_min'][2] / crawler['clips_per_min'][2]:.1f}x "
          "(2 workers)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
