"""YoutubeSource end to end: real yt-dlp and ffmpeg against source videos served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from kinetix.catalog.clip import Clip
from kinetix.config import TrimMode, YoutubeConfig
from kinetix.errors import ConfigError
from kinetix.sources.ratelimit import BreakerPolicy, Clock, RequestGate
from kinetix.sources.youtube import YoutubeSource, YoutubeTask, choose_formats, readiness
from kinetix.sources.youtube import source as youtube
from kinetix.store.layout import LabelStyle, manifest_path, partial_dir
from kinetix.store.manifest import ClipState, Manifest
from kinetix.synthetic.media import VideoSpec, frame_index, make_video
from kinetix.synthetic.server import MirrorServer

DASH_ID = "-x9Kq_Z3aB0"  # a real-looking id that starts with "-"
PLAIN_ID = "bFr4mes0001"
NOISE_ID = "n0iseVid001"
LABEL = "massaging person's head"
SPECS = {
    DASH_ID: VideoSpec(duration=40, fps=10, width=96, height=72, gop=25),
    PLAIN_ID: VideoSpec(duration=40, fps=10, width=96, height=72, gop=25, preset="veryfast"),
    # big enough that fetching the whole file instead of the section would show
    NOISE_ID: VideoSpec(duration=60, fps=10, width=128, height=96, gop=50, pattern="noise"),
}


class FakeClock(Clock):
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the synthetic mirror's ``youtube/{id}.mp4`` source videos."""
    root = tmp_path_factory.mktemp("youtube-mirror")
    for youtube_id, spec in SPECS.items():
        make_video(root / "youtube" / f"{youtube_id}.mp4", spec.with_(comment=youtube_id))
    return root


@pytest.fixture
def server(sources: Path) -> Iterator[MirrorServer]:
    with MirrorServer(sources) as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_source(
    root: Path,
    server: MirrorServer,
    clock: FakeClock,
    layout: LabelStyle = LabelStyle.RAW,
    **kw: Any,
) -> YoutubeSource:
    kw.setdefault("max_attempts", 3)
    config = YoutubeConfig(url_template=server.url + "youtube/{youtube_id}.mp4", **kw)
    return YoutubeSource(root, config, layout, gate=RequestGate(config.rate, clock=clock))


def task_for(youtube_id: str, start: int, end: int, label: str | None = LABEL) -> YoutubeTask:
    clip = Clip("k400", "train", youtube_id, start, end, label)
    folder = label if label is not None else "_unlabeled"
    return YoutubeTask(
        "k400", "train", clip.key, youtube_id, start, end, label, f"train/{folder}/{clip.key}.mp4"
    )


def run_one(source: YoutubeSource, task: YoutubeTask) -> dict[str, Any]:
    result = source.run(task)
    assert len(result.updates) == 1
    update = result.updates[0]
    assert (update.release, update.split, update.key) == (task.release, task.split, task.key)
    assert update.count_attempt
    return dict(update.fields)


def decoded_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def leftovers(root: Path) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and (p.name.startswith(".") or "partial" in p.parts)
    ]


def test_exact_clip_of_a_dash_id_lands_under_an_apostrophe_label(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    source = make_source(tmp_path, server, clock)
    task = task_for(DASH_ID, 12, 22)
    fields = run_one(source, task)
    assert fields["state"] == ClipState.PRESENT.value, fields
    path = tmp_path / "train" / LABEL / f"{DASH_ID}_000012_000022.mp4"
    assert fields["path"] == f"train/{LABEL}/{DASH_ID}_000012_000022.mp4" and path.is_file()
    frames = decoded_indices(path)
    assert frames[0] == 120  # time_start * fps: start error 0 frames
    assert abs(len(frames) - 100) <= 1  # (time_end - time_start) * fps, within one frame
    assert fields["source"] == "youtube" and fields["trim"] == "exact"
    assert fields["start_offset"] == 0.0 and fields["duration"] == pytest.approx(10.0)
    assert fields["num_frames"] == len(frames) and fields["has_audio"] == 1
    assert fields["bytes"] == path.stat().st_size
    assert fields["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fields["error_code"] is None and fields["error_message"] is None
    assert leftovers(tmp_path) == []  # no temp clip, no section, no partial folder content


def test_fast_clip_starts_on_a_keyframe_with_its_offset_recorded(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    source = make_source(tmp_path, server, clock, trim=TrimMode.FAST)
    fields = run_one(source, task_for(PLAIN_ID, 13, 23))
    assert fields["state"] == "present" and fields["trim"] == "fast"
    assert fields["start_offset"] == pytest.approx(-0.5)  # keyframes every 2.5 s: at 12.5 s
    path = tmp_path / fields["path"]
    frames = decoded_indices(path)
    assert frames[0] == 125
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.pts is not None]
    assert not any(p.is_discard for p in packets)  # no edit list hides a preroll
    assert min(p.pts for p in packets) == 0


def test_only_the_clips_section_is_fetched(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, sources: Path
) -> None:
    source = make_source(tmp_path, server, clock)
    fields = run_one(source, task_for(NOISE_ID, 30, 40))
    assert fields["state"] == "present", fields
    size = (sources / "youtube" / f"{NOISE_ID}.mp4").stat().st_size
    stats = server.stats
    sent = stats.bytes_sent[f"youtube/{NOISE_ID}.mp4"]
    assert stats.range_requests >= 2  # the index at the front, then the section
    assert size / 6 * 0.9 < sent < size / 2  # 13 s and the index of a 60 s video, not all of it


def test_404_is_unavailable_and_not_tried_again(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    source = make_source(tmp_path, server, clock)
    fields = run_one(source, task_for("gone0000000", 1, 11))
    assert fields["state"] == ClipState.FAILED.value
    assert fields["error_code"] == "unavailable"
    assert "HTTP Error 404" in fields["error_message"]
    assert server.stats.total_requests == 1 and clock.slept == [0.0]


def test_429_waits_for_retry_after_then_succeeds(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    server.add_fault(f"youtube/{DASH_ID}.mp4", "rate_limit", retry_after=7)
    source = make_source(tmp_path, server, clock)
    fields = run_one(source, task_for(DASH_ID, 12, 22))
    assert fields["state"] == "present"
    assert 7.0 in clock.slept


def test_persistent_429_stops_at_max_attempts(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    server.add_fault(f"youtube/{DASH_ID}.mp4", "rate_limit", times=None, retry_after=30)
    source = make_source(tmp_path, server, clock, max_attempts=4)
    fields = run_one(source, task_for(DASH_ID, 12, 22))
    assert fields["error_code"] == "rate_limited"
    assert fields["error_message"].endswith("(after 4 tries)")
    assert server.stats.total_requests == 4  # one lookup per try, no more
    assert [s for s in clock.slept if s] == [30.0, 30.0, 30.0]


def test_429_on_the_section_request_is_diagnosed(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kinetix.sources.youtube")
    # the lookup (HEAD) passes, then ffmpeg's range requests are refused: ffmpeg only says
    # "exited with code N", so the source asks the server with one HEAD
    server.add_fault(f"youtube/{DASH_ID}.mp4", "rate_limit", skip=1, times=2, retry_after=5)
    source = make_source(tmp_path, server, clock, max_attempts=2)
    fields = run_one(source, task_for(DASH_ID, 12, 22))
    assert fields["state"] == "present"
    assert "rate_limited (the section download failed" in caplog.text
    assert "the server answers: HTTP Error 429" in caplog.text
    assert 5.0 in clock.slept  # the Retry-After of the diagnosing HEAD


def test_dropped_connections_are_retried_then_recorded_as_network(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    # body faults spare HEAD requests, so these hit ffmpeg's range requests
    server.add_fault(f"youtube/{NOISE_ID}.mp4", "reset", times=None, after_bytes=100_000)
    source = make_source(tmp_path, server, clock)
    fields = run_one(source, task_for(NOISE_ID, 30, 40))
    assert fields["error_code"] == "network"
    assert fields["error_message"].endswith("(after 3 tries)")
    assert not (tmp_path / "train").exists() or not any((tmp_path / "train").rglob("*.mp4"))
    assert leftovers(tmp_path) == []

    server.clear_faults()
    server.add_fault(f"youtube/{NOISE_ID}.mp4", "truncate", skip=2, after_bytes=1000)
    assert run_one(source, task_for(NOISE_ID, 30, 40))["state"] == "present"


@pytest.mark.parametrize("mode", list(TrimMode))
def test_video_shorter_than_the_span(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, mode: TrimMode
) -> None:
    source = make_source(tmp_path, server, clock, trim=mode)
    ends_early = run_one(source, task_for(DASH_ID, 35, 45))
    assert ends_early["state"] == "present" and ends_early["duration"] == pytest.approx(5.0)
    too_short = run_one(source, task_for(DASH_ID, 45, 55))
    assert too_short["error_code"] == "too_short"
    assert "ends at 40.00 s" in too_short["error_message"]
    assert "tries)" not in too_short["error_message"]  # a permanent reason: one try only


def with_duration(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make the mirror's lookup report a duration, as YouTube's does."""
    base = youtube._mirror_file_ie()

    class WithDuration(base):  # type: ignore[misc, valid-type]
        def _real_extract(self, url: str) -> dict[str, Any]:
            return {**super()._real_extract(url), "duration": seconds}

    monkeypatch.setattr(youtube, "_mirror_file_ie", lambda: WithDuration)


def test_a_known_duration_settles_too_short_before_any_fetch(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_duration(monkeypatch, 40)
    source = make_source(tmp_path, server, clock)
    fields = run_one(source, task_for(DASH_ID, 45, 55))
    assert fields["error_code"] == "too_short" and "lasts 40 s" in fields["error_message"]
    assert server.stats.total_requests == 1  # the lookup only: no section was fetched


def test_a_section_short_of_the_known_duration_is_a_network_failure(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_duration(monkeypatch, 60)  # the lookup promises 60 s; only 40 s arrive
    source = make_source(tmp_path, server, clock, max_attempts=2)
    fields = run_one(source, task_for(DASH_ID, 35, 45))
    assert fields["error_code"] == "network"
    assert "ends at 40.00 s, short of 45 s" in fields["error_message"]


def test_no_audio(tmp_path: Path, server: MirrorServer, clock: FakeClock) -> None:
    source = make_source(tmp_path, server, clock, audio=False)
    fields = run_one(source, task_for(DASH_ID, 2, 12))
    assert fields["has_audio"] == 0
    with av.open(str(tmp_path / fields["path"])) as container:
        assert not container.streams.audio


SECRET_VALUE = "kx-SECRET-cookie-4242"
SECRET_DIR = "tok3n-d0nt-l0g"
PROXY_PASSWORD = "pw-SECRET-7777"


def write_cookies(folder: Path) -> Path:
    path = folder / SECRET_DIR / "cookies.txt"
    path.parent.mkdir(parents=True)
    path.write_text(
        "# Netscape HTTP Cookie File\n"
        f"127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\t{SECRET_VALUE}\n"
        f".youtube.com\tTRUE\t/\tTRUE\t0\tLOGIN_INFO\t{SECRET_VALUE}-yt\n"
    )
    return path


def assert_no_secrets(text: str) -> None:
    for secret in (SECRET_VALUE, SECRET_DIR, PROXY_PASSWORD):
        assert secret not in text


def test_cookies_never_reach_logs_messages_or_the_manifest(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cookies = write_cookies(tmp_path / "home")
    before = cookies.read_text()
    root = tmp_path / "root"
    source = make_source(root, server, clock, cookies=cookies)
    good = run_one(source, task_for(DASH_ID, 12, 22))
    missing = run_one(source, task_for("gone0000000", 1, 11))
    server.add_fault(f"youtube/{DASH_ID}.mp4", "status", status=500, times=None)
    broken = run_one(source, task_for(DASH_ID, 20, 30))
    assert good["state"] == "present"
    assert missing["error_code"] == "unavailable" and broken["error_code"] == "network"
    with Manifest(manifest_path(root)) as manifest:
        manifest.add_clips([Clip("k400", "train", DASH_ID, 12, 22, LABEL)])
        manifest.update("k400", "train", f"{DASH_ID}_000012_000022", **good)
        manifest.add_clips([Clip("k400", "train", "gone0000000", 1, 11, LABEL)])
        manifest.update("k400", "train", "gone0000000_000001_000011", **missing)
    assert_no_secrets(manifest_path(root).read_bytes().decode("latin-1"))
    assert_no_secrets(repr([good, missing, broken]))
    assert_no_secrets(caplog.text)
    assert cookies.read_text() == before  # yt-dlp never wrote its jar back to the user's file


def test_proxy_credentials_never_reach_logs_or_messages(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # nothing listens on port 9: every request through this proxy fails
    proxy = f"http://kxuser:{PROXY_PASSWORD}@127.0.0.1:9"
    source = make_source(tmp_path, server, clock, proxy=proxy, max_attempts=2)
    fields = run_one(source, task_for(DASH_ID, 12, 22))
    assert fields["error_code"] == "network"
    assert_no_secrets(repr(fields))
    assert_no_secrets(caplog.text)
    assert server.stats.total_requests == 0  # it really went to the proxy


def test_bad_cookie_settings_fail_in_the_parent_without_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / SECRET_DIR / "nope.txt"
    with pytest.raises(ConfigError, match="--cookies file does not exist") as err:
        YoutubeSource(tmp_path, YoutubeConfig(cookies=missing))
    assert SECRET_DIR not in str(err.value)
    with pytest.raises(ConfigError, match="valid values are"):
        YoutubeSource(tmp_path, YoutubeConfig(cookies_from_browser="netscape-navigator"))


def test_breaker_pauses_everyone_warns_of_each_pause_and_advises_once(
    tmp_path: Path, server: MirrorServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kinetix.sources.ratelimit")
    server.add_fault("youtube/*", "rate_limit", times=None, retry_after=1)
    config = YoutubeConfig(url_template=server.url + "youtube/{youtube_id}.mp4", max_attempts=1)
    gate = RequestGate(
        config.rate,
        clock=clock,
        breaker=BreakerPolicy(min_calls=4, cooldown=60),
        advice=youtube.ADVICE,
    )
    source = YoutubeSource(tmp_path, config, gate=gate)
    results = [run_one(source, task_for(DASH_ID, s, s + 10)) for s in range(0, 24, 3)]
    assert {r["error_code"] for r in results} == {"rate_limited"}
    assert gate.breaker.trips >= 2  # tripped, probed, tripped again
    assert 60.0 in [round(s, 6) for s in clock.slept]  # everyone sat out the cool-down
    pauses = [r for r in caplog.records if "pausing every worker" in r.getMessage()]
    assert len(pauses) == gate.breaker.trips
    assert all(r.levelno == logging.WARNING for r in pauses)
    advised = [r.getMessage() for r in pauses if "--cookies FILE" in r.getMessage()]
    assert len(advised) == 1
    assert "--cookies-from-browser" in advised[0] and "--proxy URL" in advised[0]


def test_plan_makes_one_picklable_task_per_clip(tmp_path: Path) -> None:
    with Manifest(manifest_path(tmp_path)) as manifest:
        manifest.add_clips(
            [
                Clip("k400", "train", DASH_ID, 12, 22, LABEL),
                Clip("k400", "test", PLAIN_ID, 0, 10, None),
            ]
        )
        rows = list(manifest.clips())
    source = YoutubeSource(tmp_path, YoutubeConfig(), LabelStyle.TORCHVISION)
    tasks = source.plan(rows)
    assert [t.relpath for t in tasks] == [
        f"test/_unlabeled/{PLAIN_ID}_000000_000010.mp4",
        f"train/massaging_persons_head/{DASH_ID}_000012_000022.mp4",
    ]
    assert pickle.loads(pickle.dumps(tasks)) == tasks
    clone = pickle.loads(pickle.dumps(source))  # a process pool ships the source too
    assert clone.plan(rows) == tasks and clone.gate is source.gate  # one gate per process


def test_plan_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    source = YoutubeSource(tmp_path, YoutubeConfig())
    task = task_for(DASH_ID, 12, 22)
    folder = (tmp_path / task.relpath).parent
    folder.mkdir(parents=True)
    stale_clip = folder / f".{DASH_ID}_000012_000022.mp4.4242.1234.part"
    stale_clip.write_bytes(b"half a clip")
    kept = folder / "notes.txt"
    kept.write_text("not ours")
    section = partial_dir(tmp_path) / "youtube" / f"{task.key}.4242.1234" / "section.mp4.part"
    section.parent.mkdir(parents=True)
    section.write_bytes(b"half a section")
    assert source.plan([_row(Clip("k400", "train", DASH_ID, 12, 22, LABEL))]) == [task]
    assert not stale_clip.exists() and not section.exists() and kept.exists()


def test_workers_share_one_source_and_gate(
    tmp_path: Path, server: MirrorServer, clock: FakeClock
) -> None:
    from kinetix.executors.base import TaskKind
    from kinetix.executors.local import LocalExecutor

    source = make_source(tmp_path, server, clock, rate=1000)
    tasks = [task_for(vid, s, s + 10) for vid in (DASH_ID, PLAIN_ID) for s in (3, 17)]
    with LocalExecutor(2, io_workers=2) as executor:
        results = list(executor.map_unordered(source.run, tasks, kind=TaskKind.IO))
    fields = {r.updates[0].key: dict(r.updates[0].fields) for r in results}
    assert {f["state"] for f in fields.values()} == {"present"}
    for task in tasks:
        assert decoded_indices(tmp_path / fields[task.key]["path"])[0] == task.time_start * 10
    assert leftovers(tmp_path) == []


def test_format_choice() -> None:
    def fmt(fid: str, w: int | None, h: int | None, vcodec: str, acodec: str, ext: str = "mp4",
            tbr: float = 1000, proto: str = "https") -> dict[str, Any]:  # fmt: skip
        return {"format_id": fid, "width": w, "height": h, "vcodec": vcodec, "acodec": acodec,
                "ext": ext, "tbr": tbr, "protocol": proto, "url": f"https://x/{fid}"}  # fmt: skip

    youtube_like = [
        fmt("sb0", 48, 27, "none", "none", ext="mhtml", proto="mhtml"),
        fmt("140", None, None, "none", "mp4a.40.2", ext="m4a", tbr=129),
        fmt("139", None, None, "none", "mp4a.40.5", ext="m4a", tbr=49),
        fmt("251", None, None, "none", "opus", ext="webm", tbr=130),
        fmt("160", 256, 144, "avc1.4d400c", "none"),
        fmt("134", 640, 360, "avc1.4d401e", "none"),
        fmt("136", 1280, 720, "avc1.4d401f", "none"),
        fmt("137", 1920, 1080, "avc1.640028", "none"),
        fmt("248", 1920, 1080, "vp9", "none", ext="webm"),
        fmt("18", 640, 360, "avc1.42001E", "mp4a.40.2"),
        fmt("hls-720", 1280, 720, "avc1.4d401f", "mp4a.40.2", proto="m3u8_native"),
    ]
    ids = lambda chosen: [f["format_id"] for f in chosen]  # noqa: E731
    assert ids(choose_formats(youtube_like, None)) == ["136", "140"]  # 720p H.264 + AAC
    assert ids(choose_formats(youtube_like, 256)) == ["134", "140"]  # smallest short side >= 256
    assert ids(choose_formats(youtube_like, 2000)) == ["137", "140"]  # nothing big enough: biggest
    assert ids(choose_formats(youtube_like, None, audio=False)) == ["136"]
    portrait = [fmt("p", 720, 1280, "avc1", "none"), fmt("q", 360, 640, "avc1", "none")]
    assert ids(choose_formats(portrait, 400)) == ["p"]  # short side is the width here
    vp9_only = [
        fmt("248", 1920, 1080, "vp9", "none", ext="webm"),
        fmt("247", 1280, 720, "vp9", "none", ext="webm"),
    ]
    assert ids(choose_formats(vp9_only, None)) == ["247"]  # re-encoded to H.264 by the trim
    direct = [{"format_id": "mp4", "url": "http://127.0.0.1/youtube/x.mp4", "ext": "mp4"}]
    assert ids(choose_formats(direct, 256)) == ["mp4"]  # a mirror's file: size unknown, muxed
    assert choose_formats([fmt("hls", 640, 360, "avc1", "mp4a", proto="m3u8_native")], None) == []


def test_youtube_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    report = readiness.youtube_readiness()
    assert report["ready"], report["problems"]
    assert report["deno"]["path"] and report["yt_dlp_ejs"]
    monkeypatch.setattr(readiness, "_deno_path", lambda: "/nonexistent/deno")
    broken = readiness.youtube_readiness()
    assert not broken["ready"] and any("deno" in p for p in broken["problems"])


def test_clips_of_the_synthetic_mirrors_source_videos(
    tmp_path: Path, mirror: Any, mirror_server: MirrorServer, clock: FakeClock
) -> None:
    """The shared mirror's ``youtube/{id}.mp4`` stand-ins, with real K700 ids and labels."""
    clips = [c for c in mirror.clips("k700", "val") if c.source_video][:3]
    if not clips:
        pytest.skip("the session mirror has no source videos")
    source = make_source(tmp_path, mirror_server, clock)
    fps = mirror.source_videos[clips[0].clip.youtube_id].fps
    for c in clips:
        task = source.plan([_row(c.clip)])[0]
        fields = run_one(source, task)
        assert fields["state"] == "present", fields
        frames = decoded_indices(tmp_path / fields["path"])
        assert frames[0] == c.clip.time_start * fps
        assert abs(len(frames) - (c.clip.time_end - c.clip.time_start) * fps) <= 1
    assert leftovers(tmp_path) == [] and not any(partial_dir(tmp_path).rglob("*.mp4"))


def _row(clip: Clip) -> Any:
    from kinetix.store.manifest import ClipRow

    return ClipRow(clip.release, clip.split, clip.key, clip.youtube_id, clip.time_start,
                   clip.time_end, clip.label, {"state": "missing"})  # fmt: skip
