"""The clips bar of a download reaches its total: clips no shard holds, and refused copies,
count as settled (issue 13: it stopped at 95%)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kinetix.config import DownloadConfig
from kinetix.download import download
from kinetix.progress import Progress
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer

LINE = re.compile(r"^shards, tasks (\d+)/(\d+), clips (\d+)/(\d+)(?:, failed (\d+))?"
                  r"(?:, not in any shard (\d+))?")  # fmt: skip


@pytest.mark.parametrize("split", ["val", "train"])
def test_clips_bar_reaches_its_total(
    tmp_path: Path, mirror: MirrorIndex, mirror_server: MirrorServer, split: str
) -> None:
    s = mirror.split("k400", split)
    assert s.missing  # the mirror leaves clips out of every shard
    lines: list[str] = []
    config = DownloadConfig(tmp_path, "k400", split=split, mirror=mirror_server.url)
    report = download(config, emit=lines.append)
    assert report.ok
    last = [m for m in map(LINE.match, lines) if m][-1]
    tasks, total_tasks, clips, total, failed, absent = (int(g or 0) for g in last.groups())
    assert tasks == total_tasks and total == len(s.clips)
    assert absent == len(s.missing)
    assert clips + failed + absent == total, lines


def test_settle_counts_on_the_bar_and_in_the_line() -> None:
    lines: list[str] = []
    progress = Progress("shards", total_clips=5, total_tasks=1, emit=lines.append, bars=False)
    progress.add_clips(3, failed=1)
    progress.task_done()
    progress.settle(1, "not in any shard")
    progress.settle(0, "not in any shard")  # nothing to say
    assert lines[-1] == "shards, tasks 1/1, clips 3/5, failed 1, not in any shard 1"
    assert progress.clips + progress.failed + progress.settled == 5
