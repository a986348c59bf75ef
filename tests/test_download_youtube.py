"""`kinetix download --source youtube|auto` end to end: real yt-dlp + ffmpeg against the mirror's
full-length source videos, exact trims checked frame by frame, reruns and SIGKILL resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import av
import pytest

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.data import KineticsDataset
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import frame_index
from kinetix.synthetic.mirror import MirrorSpec, build_mirror
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


@pytest.fixture(scope="module")
def gappy_mirror(tmp_path_factory):
    """K400 val where two annotated clips are in no shard but have YouTube source videos."""
    spec = MirrorSpec(
        releases={"k400": ("val",)},
        classes=2,
        clips_per_class=2,
        shard_size=4,
        missing=2,
        corrupted=0,
        plain_tar_shard=False,
        appledouble=False,
        source_videos=1,
        source_releases=("k400",),
    )
    return build_mirror(tmp_path_factory.mktemp("gappy"), spec)


def youtube_argv(release: str, root, server: MirrorServer, *extra: str) -> list[str]:
    return [
        "download", release, "--split", "val", "--root", str(root), "--mirror", server.url,
        "--youtube-url-template", server.url + "youtube/{youtube_id}.mp4",
        "--rate", "50", "--no-progress", *extra,
    ]  # fmt: skip


def first_frame_and_count(path) -> tuple[int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        return frames[0], len(frames), float(stream.average_rate)


def youtube_requests(server: MirrorServer) -> int:
    return sum(n for path, n in server.stats.requests.items() if path.startswith("youtube/"))


def test_auto_fills_the_cvdf_gaps_from_youtube(tmp_path, gappy_mirror):
    s = gappy_mirror.split("k400", "val")
    assert len(s.missing) == 2
    with MirrorServer(gappy_mirror.root) as server:
        assert main(youtube_argv("k400", tmp_path, server, "--source", "auto")) == 0
        with Manifest(manifest_path(tmp_path), readonly=True) as m:
            rows = {r.key: r for r in m.clips()}
        assert all(r.state == "present" for r in rows.values())
        for key in s.missing:
            row = rows[key]
            assert (row.source, row.trim) == ("youtube", "exact")
            clip = s.clips[key].clip
            first, count, fps = first_frame_and_count(tmp_path / row.path)
            assert first == round(clip.time_start * fps)  # the frame at time_start, exactly
            assert abs(count - (clip.time_end - clip.time_start) * fps) <= 1
        assert {rows[k].source for k in rows if k not in s.missing} == {"cvdf"}
        # every clip, from either source, was checked as it landed: loadable with no verify
        assert all(r.verify == "good" and r.verify_level == "quick" for r in rows.values())
        assert len(KineticsDataset(tmp_path, "val", output="numpy")) == len(rows)

        before = server.stats.total_requests
        assert main(youtube_argv("k400", tmp_path, server, "--source", "auto")) == 0
        assert server.stats.total_requests == before  # finished: no network at all


def test_k700_from_youtube_records_reasons_and_reruns_fetch_nothing(
    tmp_path, mirror, mirror_server, capsys
):
    s = mirror.split("k700", "val")
    sourced = {c.key for c in s.clips.values() if c.source_video}
    assert sourced and len(sourced) < len(s.clips)
    assert main(youtube_argv("k700", tmp_path, mirror_server, "--source", "youtube")) == 0
    out = capsys.readouterr().out
    assert f"{len(sourced)} fetched (youtube {len(sourced)})" in out
    assert f"failed: unavailable {len(s.clips) - len(sourced)}" in out
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        rows = {r.key: r for r in m.clips()}
    assert {k for k, r in rows.items() if r.state == "present"} == sourced
    assert all(rows[k].error_code == "unavailable" for k in set(rows) - sourced)

    before = youtube_requests(mirror_server)
    assert main(youtube_argv("k700", tmp_path, mirror_server, "--source", "youtube")) == 0
    assert youtube_requests(mirror_server) == before  # unavailable is permanent; done is done
    # Only the reasons asked for are retried.
    argv = youtube_argv("k700", tmp_path, mirror_server, "--source", "youtube")
    assert main([*argv, "--retry-failed", "rate_limited,network"]) == 0
    assert youtube_requests(mirror_server) == before
    assert main([*argv, "--retry-failed", "unavailable"]) == 0
    assert youtube_requests(mirror_server) > before


@pytest.mark.slow
def test_youtube_download_killed_then_rerun_never_refetches_finished_clips(tmp_path, mirror):
    s = mirror.split("k700", "val")
    sourced = sorted(c.key for c in s.clips.values() if c.source_video)
    root = tmp_path / "root"
    with MirrorServer(mirror.root, total_bps=400_000) as server:
        argv = [sys.executable, "-m", "kinetix.cli.main"]
        argv += youtube_argv("k700", root, server, "--source", "youtube", "--workers", "1")
        env = {**os.environ}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done: set[str] = set()
        deadline = time.monotonic() + 120
        while not done and proc.poll() is None:
            assert time.monotonic() < deadline, "no clip finished"
            time.sleep(0.05)
            if manifest_path(root).exists():
                try:
                    with Manifest(manifest_path(root), readonly=True) as m:
                        done = {r.key for r in m.clips(states=["present"])}
                except Exception:
                    done = set()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert done, "the run ended before a clip finished; nothing was tested"
        finished_sources = {f"youtube/{k.rsplit('_', 2)[0]}.mp4" for k in done}
        seen = {p: server.stats.requests[p] for p in finished_sources}
        rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert rerun.returncode == 0, rerun.stderr
        assert {p: server.stats.requests[p] for p in finished_sources} == seen
    with Manifest(manifest_path(root), readonly=True) as m:
        assert sorted(r.key for r in m.clips(states=["present"])) == sourced
    leftovers = [
        p
        for p in root.rglob("*")
        if p.is_file() and ".kinetix" not in p.parts and p.name != CARD_NAME
    ]
    assert sorted(p.stem for p in leftovers) == sourced  # no half-written sections left


def test_non_video_answers_are_not_video_not_retried_and_never_pause_the_pool(
    tmp_path, mirror, mirror_server
):
    """An HTML page or random bytes where a video should be: recorded as ``not_video`` after one
    try each, and the rate limiter never pauses the other workers for it (issue 14 item 7)."""
    s = mirror.split("k700", "val")
    sourced = sorted(c.key for c in s.clips.values() if c.source_video)
    html, junk = sourced[:2]
    ids = {key: key.rsplit("_", 2)[0] for key in sourced}
    mirror_server.add_fault(f"youtube/{ids[html]}.mp4", "html", times=None)
    mirror_server.add_fault(f"youtube/{ids[junk]}.mp4", "junk", times=None)
    argv = [sys.executable, "-m", "kinetix.cli.main"]
    argv += youtube_argv("k700", tmp_path, mirror_server, "--source", "youtube")
    # Before the fix: 4 retries each, then breaker pauses of 60 s, 120 s, 240 s ...
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "throttling" not in run.stderr and "pausing every worker" not in run.stderr
    assert "not_video 2" in run.stdout
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        rows = {r.key: r for r in m.clips()}
    for key, what in ((html, "an HTML page"), (junk, "unrecognised data")):
        row = rows[key]
        assert (row.state, row.error_code) == ("failed", "not_video")
        assert row.error_message.startswith(f"not a video: the server sent {what}")
        assert "tries)" not in row.error_message  # tried once: retrying cannot help
    assert all(rows[k].state == "present" for k in sourced[2:])
