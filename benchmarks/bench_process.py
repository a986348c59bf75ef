"""Frame extraction, resize and verify throughput of kinetix against the tools users script by hand.

On one set of realistic synthetic clips (noise pattern, H.264 at ~1 Mb/s, 30 fps, 10 s;
340x256 like mmaction2's kinetics400_256 plus some 720p like raw CVDF clips), side by side
in one run:

- frames: ``kinetix frames`` (``--encoder turbo``: PyAV + libjpeg-turbo, and ``--encoder
  ffmpeg``) vs ``ffmpeg -i clip -q:v 2 img_%05d.jpg`` one process per clip
  in a sequential loop (the shell loop users write), vs an OpenCV ``VideoCapture`` read and
  ``cv2.imwrite`` loop (mmaction2 ``build_rawframes`` / PaddleVideo ``extract_frames`` way);
- resize: ``kinetix process --short-side 256`` vs ``ffmpeg -vf scale=-2:256 -c:v libx264``
  per clip in a sequential loop (mmaction2 ``resize_videos``), same preset and CRF;
- verify: ``kinetix verify`` (first and last frame) clips per second.

The peer ffmpeg is the binary kinetix uses. Wall time decides; CPU seconds (user+sys, this
process and every child) are printed to show where the time goes. Outputs are deleted
between methods, outside the timings; a warm-up pass runs first so no method pays for the
machine's first writes.

    python benchmarks/bench_process.py [--small 60] [--hd 6] [--duration 10] [--preset medium]
        [--rounds 1] [--workdir DIR] [--skip-resize]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.config import FramesConfig, ProcessConfig, VerifyConfig
from kinetix.process.ffmpeg import find_ffmpeg
from kinetix.process.frames import extract_dataset
from kinetix.process.transcode import process_dataset
from kinetix.process.verify import verify_dataset
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import ClipUpdate, Manifest
from kinetix.testing.media import VideoSpec, make_video

LABELS = ("abseiling", "air drumming", "answering questions", "applauding")
FPS = 30


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def build_root(root: Path, small: int, hd: int, duration: int) -> list[Path]:
    """A download-shaped root: one encode per resolution, copied (decoding cost is the same)."""
    specs = [
        (small, VideoSpec(duration, FPS, 340, 256, pattern="noise", bitrate="1M")),
        (hd, VideoSpec(duration, FPS, 1280, 720, pattern="noise", bitrate="1M")),
    ]
    paths: list[Path] = []
    if manifest_path(root).exists():
        with Manifest(manifest_path(root), readonly=True) as m:
            paths = [root / r.path for r in m.clips() if r.path]
        if len(paths) == small + hd:
            return paths
        shutil.rmtree(root)
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", "k400")
        m.set_meta("layout", "raw")
        i = 0
        for count, spec in specs:
            if not count:
                continue
            source = make_video(root / f".source-{spec.width}.mp4", spec)
            for _ in range(count):
                clip = Clip("k400", "val", f"bench{i:05d}", 0, duration, LABELS[i % len(LABELS)])
                rel = clip_relpath(clip.split, clip.label, clip.key, LabelStyle.RAW)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, root / rel)
                m.add_clips([clip])
                m.update("k400", "val", clip.key, state="present", path=rel,
                         bytes=(root / rel).stat().st_size)  # fmt: skip
                paths.append(root / rel)
                i += 1
            source.unlink()
    return paths


Method = tuple[Callable[[], float], Callable[[], None]]  # (run: units of work, clean up)


def compare(methods: dict[str, Method], rounds: int) -> dict[str, tuple[float, float, float]]:
    """Best of ``rounds`` per method, the methods interleaved within each round so a busy
    neighbour slows them alike: name -> (wall seconds, CPU seconds, units of work)."""
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(rounds):
        for name, (run, clean) in methods.items():
            clean()
            c0, t0 = cpu_seconds(), time.perf_counter()
            work = run()
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            clean()
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, work)
    return best


def ffmpeg_frames(ffmpeg: str, clips: list[Path], out: Path) -> float:
    for i, clip in enumerate(clips):
        folder = out / str(i)
        folder.mkdir(parents=True)
        subprocess.run(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(clip), "-q:v", "2",
             str(folder / "img_%05d.jpg")],
            check=True,
        )  # fmt: skip
    return float(sum(len(os.listdir(out / str(i))) for i in range(len(clips))))


def opencv_frames(clips: list[Path], out: Path) -> float:
    import cv2

    frames = 0
    for i, clip in enumerate(clips):
        folder = out / str(i)
        folder.mkdir(parents=True)
        capture = cv2.VideoCapture(str(clip))
        n = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            n += 1
            cv2.imwrite(str(folder / f"img_{n:05d}.jpg"), image)
        capture.release()
        frames += n
    return float(frames)


def ffmpeg_resize(ffmpeg: str, clips: list[Path], out: Path, preset: str) -> float:
    out.mkdir(parents=True)
    for i, clip in enumerate(clips):
        subprocess.run(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(clip), "-vf", "scale=-2:256",
             "-c:v", "libx264", "-preset", preset, "-crf", "23", "-c:a", "copy",
             str(out / f"{i}.mp4")],
            check=True,
        )  # fmt: skip
    return float(len(clips))


def remover(path: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def report(name: str, unit: str, wall: float, cpu: float, work: float) -> float:
    rate = work / wall
    print(f"  {name:14s} {rate:9.1f} {unit}/s   wall {wall:6.1f} s   cpu {cpu:6.1f} s")
    return rate


def ratio(label: str, value: float, target: float) -> None:
    verdict = "ok" if value >= target else "MISSED"
    print(f"  {label:34s} {value:5.2f}x   (target >= {target:.1f}x: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=60, help="340x256 clips")
    parser.add_argument("--hd", type=int, default=6, help="1280x720 clips")
    parser.add_argument("--duration", type=int, default=10, help="seconds per clip")
    parser.add_argument("--preset", default="medium", help="x264 preset for the resize test")
    parser.add_argument("--rounds", type=int, default=1, help="best of N per method")
    parser.add_argument("--workdir", type=Path, help="keep clips here between runs")
    parser.add_argument("--skip-resize", action="store_true")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kinetix-bench-process-"))
    root = work / "videos"
    print("generating clips ...", file=sys.stderr, flush=True)
    clips = build_root(root, args.small, args.hd, args.duration)
    ff = find_ffmpeg()
    print(
        f"{args.small} clips 340x256 + {args.hd} clips 1280x720, {args.duration} s at {FPS} fps, "
        f"noise at 1 Mb/s; ffmpeg {ff.version} ({ff.origin}); {os.cpu_count()} cores"
    )

    warm = work / "warmup"  # first writes on a fresh VM cost more: no method should pay for it
    ffmpeg_frames(ff.path, clips[:4], warm)
    shutil.rmtree(warm)

    print(f"frames (every frame, JPEG q 2), best of {args.rounds}")
    frames_out = work / "frames"
    clean = remover(frames_out)

    def kinetix_frames(encoder: str) -> Method:
        config = FramesConfig(encoder=encoder)
        return (lambda: float(extract_dataset(root, frames_out, config).frames), clean)

    got = compare(
        {
            "kinetix turbo": kinetix_frames("turbo"),
            "kinetix ffmpeg": kinetix_frames("ffmpeg"),
            "ffmpeg CLI": (lambda: ffmpeg_frames(ff.path, clips, frames_out), clean),
            "OpenCV loop": (lambda: opencv_frames(clips, frames_out), clean),
        },
        args.rounds,
    )
    rates = {name: report(name, "frames", *result) for name, result in got.items()}
    for encoder in ("turbo", "ffmpeg"):
        ours = rates[f"kinetix {encoder}"]
        ratio(f"kinetix {encoder} / ffmpeg CLI", ours / rates["ffmpeg CLI"], 1.0)
        ratio(f"kinetix {encoder} / OpenCV loop", ours / rates["OpenCV loop"], 2.0)

    if not args.skip_resize:
        print(
            f"resize (short side 256, libx264 -preset {args.preset} -crf 23), best of {args.rounds}"
        )
        resized = work / "resized"
        config = ProcessConfig(short_side=256, preset=args.preset, upscale=True)
        clean = remover(resized)
        got = compare(
            {
                "kinetix": (lambda: float(process_dataset(root, resized, config).done), clean),
                "ffmpeg CLI": (lambda: ffmpeg_resize(ff.path, clips, resized, args.preset), clean),
            },
            args.rounds,
        )
        rates = {name: report(name, "clips", *result) for name, result in got.items()}
        ratio("kinetix / ffmpeg CLI", rates["kinetix"] / rates["ffmpeg CLI"], 1.0)

    print(f"verify (probe, every packet read, first and last frame decoded), best of {args.rounds}")
    checked: list[float] = []

    def kinetix_verify() -> float:
        with Manifest(manifest_path(root)) as m:  # forget earlier runs' results
            m.apply([ClipUpdate(r.release, r.split, r.key, {"verify": None}) for r in m.clips()])
        result = verify_dataset(root, VerifyConfig())
        checked.append(result.rate)
        return float(result.checked)

    got = compare({"kinetix": (kinetix_verify, lambda: None)}, args.rounds)
    whole = report("kinetix", "clips", *got["kinetix"])
    verdict = "ok" if whole >= 50 else "MISSED"
    print(f"  {'whole command':34s} {whole:6.1f} clips/s   (target >= 50: {verdict})")
    print(f"  {'checking alone (no walk, pool start)':34s} {max(checked):6.1f} clips/s")
    if args.workdir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
