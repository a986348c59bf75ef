"""Frame extraction, resize and verify throughput of kinetix against the tools users script by hand.

Every peer gets the same clips, the same ffmpeg binary and the same number of processes
(``--jobs``, 2 by default: one per core), and the frames are compared at equal quality: each
method's JPEG size and PSNR against the source frames are printed beside its speed.

- clips: the ``scene`` pattern (a camera panning over a dead-leaves picture, light grain:
  natural-image statistics), encoded with libx264's defaults (preset medium, crf 23,
  B-frames) like CVDF's clips, 340x256 like mmaction2's kinetics400_256, plus some 720p;
  ``--pattern noise`` gives the older noise clips (1 Mb/s);
- frames: ``kinetix frames`` (default: ffmpeg's encoder, and ``--encoder turbo``) vs
  ``ffmpeg -i clip -q:v 2 img_%05d.jpg`` per clip, ``--jobs`` at a time (``xargs -P``), vs
  OpenCV ``VideoCapture`` + ``cv2.imwrite`` in ``--jobs`` processes (mmaction2's
  ``build_rawframes`` way) at libjpeg quality 95 (mmcv's default) and at turbo's quality;
- resize: ``kinetix process --short-side 256`` vs ``ffmpeg -vf scale=-2:256 -c:v libx264``,
  ``--jobs`` at a time (mmaction2 ``resize_videos``), same preset and CRF;
- verify: ``kinetix verify`` (every packet read, first frame and last GOP decoded) and
  ``verify --deep`` (every frame decoded) vs ``ffmpeg -i clip -f null -`` (decode every frame)
  and ``ffmpeg -i clip -c copy -f null -`` (read every packet), ``--jobs`` at a time.

Rounds are interleaved, the order rotated each round, and the median and the range (min-max)
of wall and CPU seconds (user+sys of this process and every child) are printed; on a shared
machine CPU seconds are the steadier figure. Quality: RGB PSNR (the JPEG decoded by
libjpeg-turbo against the source frame converted by swscale, BT.601) and luma PSNR (the JPEG's
Y plane against the source's, range-expanded in floating point), over every 10th frame of the
first clips.

    python benchmarks/bench_process.py [--small 40] [--hd 0] [--duration 10] [--jobs 2]
        [--rounds 3] [--pattern scene] [--workdir DIR] [--skip-frames] [--skip-resize]
        [--skip-verify]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import simplejpeg

from kinetix.catalog.clip import Clip
from kinetix.config import FramesConfig, ProcessConfig, VerifyConfig, VerifyLevel
from kinetix.process.ffmpeg import find_ffmpeg
from kinetix.process.frames import extract_dataset
from kinetix.process.jpeg import jpeg_quality
from kinetix.process.transcode import process_dataset
from kinetix.process.verify import verify_dataset
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import ClipUpdate, Manifest
from kinetix.synthetic.media import VideoSpec, make_video

LABELS = ("abseiling", "air drumming", "answering questions", "applauding")
FPS = 30
SOURCES = 4  # distinct encodes per resolution, copied round-robin (decoding cost is the same)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def clip_specs(pattern: str, duration: int) -> dict[str, VideoSpec]:
    if pattern == "scene":  # libx264's defaults, as CVDF's and mmaction2's resized clips
        base = VideoSpec(duration, FPS, 340, 256, pattern="scene", preset="medium", crf=23)
    else:
        base = VideoSpec(duration, FPS, 340, 256, pattern="noise", bitrate="1M")
    return {"small": base, "hd": base.with_(width=1280, height=720)}


def build_root(root: Path, small: int, hd: int, duration: int, pattern: str) -> list[Path]:
    """A download-shaped root of ``small`` 340x256 and ``hd`` 720p clips."""
    specs = clip_specs(pattern, duration)
    wanted = [(small, specs["small"]), (hd, specs["hd"])]
    paths: list[Path] = []
    stamp = root / ".pattern"
    if manifest_path(root).exists() and stamp.exists() and stamp.read_text() == pattern:
        with Manifest(manifest_path(root), readonly=True) as m:
            paths = [root / r.path for r in m.clips() if r.path]
        if len(paths) == small + hd:
            return paths
    shutil.rmtree(root, ignore_errors=True)
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", "k400")
        m.set_meta("layout", "raw")
        i = 0
        for count, spec in wanted:
            if not count:
                continue
            sources = [
                make_video(root / f".source-{spec.width}-{s}.mp4", spec.with_(seed=s))
                for s in range(min(SOURCES, count))
            ]
            for n in range(count):
                clip = Clip("k400", "val", f"bench{i:05d}", 0, duration, LABELS[i % len(LABELS)])
                rel = clip_relpath(clip.split, clip.label, clip.key, LabelStyle.RAW)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sources[n % len(sources)], root / rel)
                m.add_clips([clip])
                m.update("k400", "val", clip.key, state="present", path=rel,
                         bytes=(root / rel).stat().st_size)  # fmt: skip
                paths.append(root / rel)
                i += 1
            for source in sources:
                source.unlink()
    stamp.write_text(pattern)
    return paths


Method = tuple[Callable[[], float], Callable[[], None]]  # (run: units of work, clean up)
Timing = tuple[list[float], list[float], float]  # (walls, cpus, units of work)


def compare(
    methods: dict[str, Method], rounds: int, keep: Callable[[str], None] | None = None
) -> dict[str, Timing]:
    """Every method once per round, interleaved and rotated so a busy neighbour slows them
    alike; ``keep(name)`` runs after a method's first round, before its output is removed."""
    got: dict[str, Timing] = {name: ([], [], 0.0) for name in methods}
    names = list(methods)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run, clean = methods[name]
            clean()
            c0, t0 = cpu_seconds(), time.perf_counter()
            work = run()
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            if r == 0 and keep is not None:
                keep(name)
            clean()
            walls, cpus, _ = got[name]
            got[name] = ([*walls, wall], [*cpus, cpu], work)
    return got


def _ffmpeg_one(ffmpeg: str, clip: Path, folder: Path) -> int:
    folder.mkdir(parents=True)
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(clip), "-q:v", "2",
         str(folder / "img_%05d.jpg")],
        check=True,
    )  # fmt: skip
    return len(os.listdir(folder))


def ffmpeg_frames(ffmpeg: str, clips: list[Path], out: Path, jobs: int) -> float:
    """``ls clips | xargs -P jobs -I{} ffmpeg -i {} -q:v 2 out/N/img_%05d.jpg``."""
    with ThreadPoolExecutor(jobs) as pool:
        return float(sum(pool.map(_ffmpeg_one, [ffmpeg] * len(clips), clips,
                                  [out / str(i) for i in range(len(clips))])))  # fmt: skip


def _opencv_one(clip: Path, folder: Path, quality: int) -> int:
    import cv2

    cv2.setNumThreads(1)
    folder.mkdir(parents=True)
    capture = cv2.VideoCapture(str(clip))
    n = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        n += 1
        cv2.imwrite(str(folder / f"img_{n:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    capture.release()
    return n


def opencv_frames(clips: list[Path], out: Path, jobs: int, quality: int) -> float:
    """mmaction2's ``build_rawframes``: a pool of ``jobs`` processes, one clip each."""
    with ProcessPoolExecutor(jobs) as pool:
        folders = [out / str(i) for i in range(len(clips))]
        return float(sum(pool.map(_opencv_one, clips, folders, [quality] * len(clips))))


def _resize_one(ffmpeg: str, clip: Path, dest: Path, preset: str) -> int:
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(clip), "-vf", "scale=-2:256",
         "-c:v", "libx264", "-preset", preset, "-crf", "23", "-c:a", "copy", str(dest)],
        check=True,
    )  # fmt: skip
    return 1


def ffmpeg_resize(ffmpeg: str, clips: list[Path], out: Path, preset: str, jobs: int) -> float:
    out.mkdir(parents=True)
    with ThreadPoolExecutor(jobs) as pool:
        dests = [out / f"{i}.mp4" for i in range(len(clips))]
        return float(sum(pool.map(_resize_one, [ffmpeg] * len(clips), clips, dests,
                                  [preset] * len(clips))))  # fmt: skip


# What users run to check clips: decode every frame (the promise of ``verify --deep``), or
# read every packet and decode nothing (weaker than ``verify``'s quick check).
DECODE_ALL = ["-v", "error", "-xerror", "-i", "CLIP", "-map", "0:v", "-f", "null", "-"]
READ_PACKETS = [
    "-v",
    "error",
    "-xerror",
    "-i",
    "CLIP",
    "-map",
    "0",
    "-c",
    "copy",
    "-f",
    "null",
    "-",
]


def _check_one(ffmpeg: str, clip: Path, argv: list[str]) -> int:
    args = [str(clip) if a == "CLIP" else a for a in argv]
    subprocess.run([ffmpeg, "-nostdin", "-threads", "1", *args], check=True)
    return 1


def ffmpeg_checks(ffmpeg: str, clips: list[Path], argv: list[str], jobs: int) -> float:
    """``ls clips | xargs -P jobs -I{} ffmpeg ... -i {} ... -f null -``."""
    with ThreadPoolExecutor(jobs) as pool:
        return float(sum(pool.map(_check_one, [ffmpeg] * len(clips), clips,
                                  [argv] * len(clips))))  # fmt: skip


def remover(path: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


# quality against the source frames -------------------------------------------------------


def source_frames(clip: Path, every: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """1-based frame number -> (RGB by swscale, luma expanded to full range in float)."""
    out = {}
    with av.open(str(clip)) as container:
        for n, frame in enumerate(container.decode(video=0), 1):
            if (n - 1) % every:
                continue
            plane = frame.planes[0]
            y = np.frombuffer(plane, np.uint8, plane.line_size * frame.height)
            y = y.reshape(frame.height, plane.line_size)[:, : frame.width]
            full = np.clip((y.astype(np.float64) - 16) * 255 / 219, 0, 255)
            out[n] = (frame.to_ndarray(format="rgb24"), full)
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def jpeg_luma(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8, plane.line_size * frame.height)
    return y.reshape(frame.height, plane.line_size)[:, : frame.width]


def quality_of(folders: list[Path], refs: list[dict[int, tuple[np.ndarray, np.ndarray]]]):
    """(KB per frame over whole folders, RGB PSNR, luma PSNR) of JPEG folders."""
    sizes, rgb, luma = [], [], []
    for folder, ref in zip(folders, refs):
        sizes += [f.stat().st_size for f in folder.glob("img_*.jpg")]
        for n, (want_rgb, want_y) in ref.items():
            path = folder / f"img_{n:05d}.jpg"
            rgb.append(_psnr(simplejpeg.decode_jpeg(path.read_bytes()), want_rgb))
            luma.append(_psnr(jpeg_luma(path), want_y))
    return float(np.mean(sizes)) / 1000, float(np.mean(rgb)), float(np.mean(luma))


# reporting -----------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def report(name: str, unit: str, timing: Timing, extra: str = "") -> None:
    walls, cpus, work = timing
    rate = work / statistics.median(walls)
    print(f"  {name:28s} {rate:8.1f} {unit}/s  wall {spread(walls)} s  "
          f"cpu {spread(cpus)} s{extra}")  # fmt: skip


def ratios(label: str, ours: Timing, peer: Timing) -> None:
    """Peer time over ours: from the medians, and the range of the per-round ratios."""
    for what, i in (("wall", 0), ("cpu", 1)):
        per_round = [p / o for o, p in zip(ours[i], peer[i])]
        mid = statistics.median(peer[i]) / statistics.median(ours[i])
        print(f"  {label:40s} {what} {mid:5.2f}x  (rounds {min(per_round):.2f}-"
              f"{max(per_round):.2f})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=40, help="340x256 clips")
    parser.add_argument("--hd", type=int, default=0, help="1280x720 clips")
    parser.add_argument("--duration", type=int, default=10, help="seconds per clip")
    parser.add_argument("--pattern", default="scene", choices=("scene", "noise"))
    parser.add_argument("--jobs", type=int, default=2, help="processes, for every method")
    parser.add_argument("--preset", default="medium", help="x264 preset for the resize test")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--workdir", type=Path, help="keep clips here between runs")
    parser.add_argument("--skip-frames", action="store_true")
    parser.add_argument("--skip-resize", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-bench-process-"))
    root = work / f"videos-{args.pattern}"
    print("generating clips ...", file=sys.stderr, flush=True)
    clips = build_root(root, args.small, args.hd, args.duration, args.pattern)
    ff = find_ffmpeg()
    mb = sum(c.stat().st_size for c in clips) * 8 / 1e6 / args.duration / len(clips)
    print(
        f"{args.small} clips 340x256 + {args.hd} clips 1280x720, {args.duration} s at {FPS} fps, "
        f"{args.pattern} pattern ({mb:.2f} Mb/s on average); ffmpeg {ff.version} ({ff.origin}); "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {args.jobs} processes per method"
    )

    warm = work / "warmup"  # first writes on a fresh VM cost more: no method should pay for it
    ffmpeg_frames(ff.path, clips[:2], warm, args.jobs)
    shutil.rmtree(warm)

    if not args.skip_frames:
        q_turbo = jpeg_quality(2)
        print(f"frames (every frame, -q:v 2; turbo and OpenCV at libjpeg {q_turbo} = equal PSNR), "
              f"{args.rounds} interleaved rounds: median (min-max)")  # fmt: skip
        frames_out = work / "frames"
        clean = remover(frames_out)
        sample = clips[: min(len(clips), SOURCES)]
        refs = [source_frames(c, every=10) for c in sample]

        def kinetix_frames(encoder: str) -> Method:
            config = FramesConfig(encoder=encoder, workers=args.jobs)
            return (lambda: float(extract_dataset(root, frames_out, config).frames), clean)

        methods: dict[str, Method] = {
            "kinetix (ffmpeg encoder)": kinetix_frames("ffmpeg"),
            "kinetix --encoder turbo": kinetix_frames("turbo"),
            "ffmpeg CLI -q:v 2": (
                lambda: ffmpeg_frames(ff.path, clips, frames_out, args.jobs),
                clean,
            ),
            f"OpenCV imwrite {q_turbo}": (
                lambda: opencv_frames(clips, frames_out, args.jobs, q_turbo),
                clean,
            ),
            "OpenCV imwrite 95 (mmcv)": (
                lambda: opencv_frames(clips, frames_out, args.jobs, 95),
                clean,
            ),
        }
        quality: dict[str, tuple[float, float, float]] = {}

        def keep(name: str) -> None:
            if name.startswith("kinetix"):
                rel = {}
                with Manifest(manifest_path(frames_out), readonly=True) as m:
                    rel = {r.key: r.path for r in m.clips()}
                with Manifest(manifest_path(root), readonly=True) as m:
                    keys = {str(root / r.path): r.key for r in m.clips()}
                folders = [frames_out / rel[keys[str(c)]] for c in sample]
            else:
                folders = [frames_out / str(i) for i in range(len(sample))]
            quality[name] = quality_of(folders, refs)

        got = compare(methods, args.rounds, keep)
        for name, timing in got.items():
            kb, rgb, luma = quality[name]
            extra = f"  {kb:5.1f} KB/frame  PSNR RGB {rgb:5.2f} Y {luma:5.2f} dB"
            report(name, "frames", timing, extra)
        for ours in ("kinetix (ffmpeg encoder)", "kinetix --encoder turbo"):
            for peer in ("ffmpeg CLI -q:v 2", f"OpenCV imwrite {q_turbo}"):
                ratios(f"{ours} vs {peer}", got[ours], got[peer])

    if not args.skip_resize:
        print(f"resize (short side 256, libx264 -preset {args.preset} -crf 23), "
              f"{args.rounds} rounds")  # fmt: skip
        resized = work / "resized"
        config = ProcessConfig(short_side=256, preset=args.preset, upscale=True, workers=args.jobs)
        clean = remover(resized)
        got = compare(
            {
                "kinetix": (lambda: float(process_dataset(root, resized, config).done), clean),
                "ffmpeg CLI": (
                    lambda: ffmpeg_resize(ff.path, clips, resized, args.preset, args.jobs),
                    clean,
                ),
            },
            args.rounds,
        )
        for name, timing in got.items():
            report(name, "clips", timing)
        ratios("kinetix vs ffmpeg CLI", got["kinetix"], got["ffmpeg CLI"])

    if not args.skip_verify:
        print(f"verify (probe, every packet read, first and last frame decoded), {args.rounds} "
              "rounds")  # fmt: skip
        checked: list[float] = []

        def kinetix_verify() -> float:
            with Manifest(manifest_path(root)) as m:  # forget earlier runs' results
                m.apply([ClipUpdate(r.release, r.split, r.key, {"verify": None})
                         for r in m.clips()])  # fmt: skip
            result = verify_dataset(root, VerifyConfig(workers=args.jobs))
            checked.append(result.rate)
            return float(result.checked)

        def kinetix_deep() -> float:
            with Manifest(manifest_path(root)) as m:
                m.apply([ClipUpdate(r.release, r.split, r.key, {"verify": None})
                         for r in m.clips()])  # fmt: skip
            config = VerifyConfig(level=VerifyLevel.DEEP, workers=args.jobs)
            return float(verify_dataset(root, config).checked)

        def ffmpeg_check(argv: list[str]) -> Callable[[], float]:
            return lambda: ffmpeg_checks(ff.path, clips, argv, args.jobs)

        nothing = lambda: None  # noqa: E731 - no output to remove
        got = compare(
            {
                "kinetix verify (quick)": (kinetix_verify, nothing),
                "kinetix verify --deep": (kinetix_deep, nothing),
                "ffmpeg -f null (decode all)": (ffmpeg_check(DECODE_ALL), nothing),
                "ffmpeg -c copy -f null": (ffmpeg_check(READ_PACKETS), nothing),
            },
            args.rounds,
        )
        for name, timing in got.items():
            report(name, "clips", timing)
        print(f"  {'quick, checking alone (no walk, pool start)':34s} {max(checked):6.1f} clips/s")
        ratios("verify --deep vs ffmpeg -f null", got["kinetix verify --deep"],
               got["ffmpeg -f null (decode all)"])  # fmt: skip
        ratios("verify (quick) vs ffmpeg -c copy", got["kinetix verify (quick)"],
               got["ffmpeg -c copy -f null"])  # fmt: skip
    if args.workdir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
