"""YouTube's --rate and --workers hold across a whole Dask cluster, measured at the server.

Each worker process of a cluster has its own request gate, so without the parent metering
dispatch, 4 workers at ``--rate R`` would ask up to 4R. The parent hands out single tries and
re-queues the retryable failures through its one gate, so retries, Retry-After pauses and the
breaker hold for the whole cluster too. The loopback mirror logs when every request arrives,
when its answer ends and its status; one try's lookup is its HEAD (what ``--rate`` counts), its
fetch the GETs ffmpeg sends after it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinetix.cli.main import main
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.mirror import DEFAULT_VIDEO, MirrorIndex, MirrorSpec, build_mirror
from kinetix.synthetic.server import MirrorServer, RequestRecord

distributed = pytest.importorskip("distributed")

CLIPS = 16


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


@pytest.fixture(scope="module")
def sourced(tmp_path_factory) -> MirrorIndex:
    """K700 val where every one of the 20 clips has a full-length source video."""
    spec = MirrorSpec(
        releases={"k700": ("val",)},
        classes=2,
        clips_per_class=CLIPS // 2,
        shard_size=CLIPS,
        missing=0,
        corrupted=0,
        plain_tar_shard=False,
        appledouble=False,
        source_videos=CLIPS,
        video=DEFAULT_VIDEO,
    )
    index = build_mirror(tmp_path_factory.mktemp("sourced"), spec)
    assert len(index.source_videos) == CLIPS
    return index


@pytest.fixture(scope="module")
def four_workers() -> Iterator[str]:
    """A LocalCluster of 4 single-threaded worker processes on 127.0.0.1."""
    cluster = distributed.LocalCluster(
        n_workers=4, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    try:
        yield "dask://" + cluster.scheduler_address.split("://", 1)[1]
    finally:
        cluster.close()


def youtube(root: Path, server: MirrorServer, *flags: str) -> int:
    return main(
        ["download", "k700", "--split", "val", "--root", str(root), "--mirror", server.url,
         "--source", "youtube", "--youtube-url-template", server.url + "youtube/{youtube_id}.mp4",
         "--no-progress", *flags]
    )  # fmt: skip


def youtube_log(server: MirrorServer) -> list[RequestRecord]:
    return [r for r in server.stats.log if r.path.startswith("youtube/")]


def most_clips_at_once(log: list[RequestRecord]) -> int:
    """The most clips whose requests overlapped: each clip spans its first request's arrival to
    its last answer's end."""
    spans: dict[str, tuple[float, float]] = {}
    for r in log:
        start, end = spans.get(r.path, (r.start, r.end))
        spans[r.path] = (min(start, r.start), max(end, r.end))
    edges = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def reaches_the_rate(achieved: float, rate: float) -> None:
    """The lower bound: within 10% of ``rate``, unless the machine is too busy to get there."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    if achieved < 0.9 * rate and load > 2:
        # 4 clips in flight cannot keep up with the gate on a machine this busy: the machine,
        # not the limiter, set the pace. The upper bounds held; say so instead of failing.
        pytest.skip(f"{achieved:.2f} lookups/s at load {load:.1f} per core: too busy to reach "
                    f"--rate {rate}; the upper bounds held")  # fmt: skip
    assert achieved >= 0.9 * rate, f"{achieved:.2f} lookups/s for --rate {rate}"


def present(root: Path) -> int:
    with Manifest(manifest_path(root), readonly=True) as m:
        return sum(1 for _ in m.clips(states=["present"]))


def test_the_rate_holds_for_four_dask_workers_together(tmp_path, sourced) -> None:
    rate = 1.5
    with MirrorServer(sourced.root) as server:
        assert youtube(tmp_path, server, "--executor", "dask", "--workers", "4",
                       "--rate", str(rate), "--trim", "fast") == 0  # fmt: skip
        log = youtube_log(server)
    assert present(tmp_path) == CLIPS
    lookups = sorted(r.start for r in log if r.method == "HEAD")
    assert len(lookups) == CLIPS, "one lookup per clip: nothing failed or was retried"
    achieved = (len(lookups) - 1) / (lookups[-1] - lookups[0])
    # Each of the 4 workers alone would allow `rate`: metered per process, they would reach
    # up to 4x (as fast as the machine fetches and trims, ~3 clips/s here). Together: rate.
    assert achieved <= 1.1 * rate, f"{achieved:.2f} lookups/s for --rate {rate}"
    # Not all at the start then idle: every 4 s of the run saw at most 4 s worth, give or take
    # two (the time from dispatch to a worker's request varies on a busy machine).
    for i, t in enumerate(lookups):
        in_window = sum(1 for u in lookups[i:] if u < t + 4.0)
        assert in_window <= 4.0 * rate + 2, f"{in_window} lookups in 4 s from {t - lookups[0]:.1f}"
    assert most_clips_at_once(log) <= 4
    reaches_the_rate(achieved, rate)


def test_retries_keep_the_rate_and_retry_after_holds_for_every_worker(tmp_path, sourced) -> None:
    rate, pause = 1.5, 3
    with MirrorServer(sourced.root) as server:
        # Lookups 3, 7, 11 and 15 (counting every lookup, retries too) are refused with
        # Retry-After: throttling and an overloaded server, two each.
        for i, status in enumerate((429, 503, 429, 503)):
            server.add_fault("youtube/*", "rate_limit", method="HEAD", skip=2 if i == 0 else 3,
                             status=status, retry_after=pause)  # fmt: skip
        assert youtube(tmp_path, server, "--executor", "dask", "--workers", "4",
                       "--rate", str(rate), "--trim", "fast") == 0  # fmt: skip
        log = youtube_log(server)
    assert present(tmp_path) == CLIPS
    lookups = sorted((r for r in log if r.method == "HEAD"), key=lambda r: r.start)
    refused = [r for r in lookups if r.status in (429, 503)]
    assert [r.status for r in refused] == [429, 503, 429, 503]
    assert len(lookups) == CLIPS + len(refused), "each refused clip was tried once more"
    # Retry-After holds cluster-wide: once a refusal is answered (and, within a second, back
    # at the parent), no worker sends a lookup until the pause is over. Metered per worker, the
    # other three would go on at the rate (about 3 lookups in that window).
    for r in refused:
        early = [u.start - r.end for u in lookups if r.end + 1.0 < u.start < r.end + pause]
        assert not early, f"lookups {early} s after a {r.status} asking for {pause} s"
    # The rate, retries included, over the stretches the run was allowed to send: every gap
    # between two lookups except those spanning a pause.
    starts = [u.start for u in lookups]
    gaps = [b - a for a, b in itertools.pairwise(starts)
            if not any(a <= r.end < b for r in refused)]  # fmt: skip
    achieved = len(gaps) / sum(gaps)
    assert achieved <= 1.1 * rate, f"{achieved:.2f} lookups/s for --rate {rate}"
    assert most_clips_at_once(log) <= 4
    reaches_the_rate(achieved, rate)


def test_workers_bounds_clips_at_once_on_a_larger_cluster(tmp_path, sourced, four_workers) -> None:
    # A slow server keeps every clip's fetch open long enough for the cluster's 4 workers to
    # overlap if they were all handed clips; --workers 2 must hold across them.
    with MirrorServer(sourced.root, per_connection_bps=200_000) as server:
        assert youtube(tmp_path, server, "--executor", four_workers, "--workers", "2",
                       "--rate", "100", "--max-per-class", "4") == 0  # fmt: skip
        log = youtube_log(server)
    assert present(tmp_path) == 8
    assert most_clips_at_once(log) == 2
