"""A 25 fps K700-2020 mirror and Countix / AVA-Kinetics files written against its clips.

One clip is in a CVDF shard (an exact cut: its frame 0 is ``time_start``), one is in none but
has a YouTube source whose keyframes are 3 s apart, so ``--source auto --trim fast`` cuts it
at the keyframe before ``time_start``: a lead-in, recorded as a negative ``start_offset``.
The annotation files hold, besides good rows, one row of each kind of bad input and a row
whose clip no root has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from kinetix.catalog.clip import Clip
from kinetix.cli.main import main
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec
from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, build_mirror
from kinetix.synthetic.server import MirrorServer

FPS = 25
VIDEO = VideoSpec(fps=FPS, width=64, height=48, audio=False, gop=3 * FPS, pattern="index")
NO_SUCH_ID = "zzzzzzzzzzz"  # a video K700-2020 has no clip of


def mirror_spec(data_dir: Path) -> MirrorSpec:
    return MirrorSpec(
        releases={"k700-2020": ("val",)},
        classes=1,
        clips_per_class=1,
        missing=1,
        source_videos=1,
        source_releases=("k700-2020",),
        corrupted=0,
        video=VIDEO,
        data_dir=data_dir,
    )


@dataclass(frozen=True)
class Clips:
    cvdf: Clip  # in a shard
    youtube: Clip  # only from YouTube (fast trim: a lead-in)


def mirror_clips(mirror: MirrorIndex) -> Clips:
    split = mirror.split("k700-2020", "val")
    (cvdf,) = [c.clip for c in split.clips.values() if c.in_shard]
    (youtube,) = [c.clip for c in split.clips.values() if not c.in_shard and c.source_video]
    assert youtube.time_start % 3, "the YouTube clip must not start on a keyframe"
    return Clips(cvdf, youtube)


def build(folder: Path, data_dir: Path) -> MirrorIndex:
    return build_mirror(folder, mirror_spec(data_dir))


# Countix rows: line 2 and 3 good (3.2 s into each clip), then bad ones and a missing clip.
def countix_text(clips: Clips) -> str:
    a, b = clips.cvdf, clips.youtube
    rows = [
        "video_id,class,kinetics_start,kinetics_end,repetition_start,repetition_end,count",
        f"{a.youtube_id},{a.label},{a.time_start},{a.time_end},{a.time_start + 3.2:.6f},"
        f"{a.time_start + 7.5:.6f},6",
        f"{b.youtube_id},{b.label},{b.time_start},{b.time_end},{b.time_start + 3.2:.6f},"
        f"{b.time_start + 5.0:.6f},3",
        # line 4: count 0; line 5: span past the clip's end; line 6: no such clip
        f"{a.youtube_id},{a.label},{a.time_start},{a.time_end},{a.time_start + 1:.6f},"
        f"{a.time_start + 2:.6f},0",
        f"{a.youtube_id},{a.label},{a.time_start},{a.time_end},{a.time_start + 8:.6f},"
        f"{a.time_end + 0.5:.6f},4",
        f"{NO_SUCH_ID},{a.label},10,20,11.000000,12.000000,2",
    ]
    return "\n".join(rows) + "\n"


def ava_text(clips: Clips) -> str:
    """Two keyframes with boxes (one fractional), a box outside [0, 1], and a lost video."""
    a, b = clips.cvdf, clips.youtube
    ka, kb = a.time_start + 4, b.time_start + 5.5
    rows = [
        f"{a.youtube_id},{ka:.6f},0.100,0.200,0.500,0.900,12,0",
        f"{a.youtube_id},{ka:.6f},0.100,0.200,0.500,0.900,80,0",
        f"{a.youtube_id},{ka:.6f},0.500,0.250,0.750,1.000,1,1",
        f"{b.youtube_id},{kb:.6f},0.000,0.000,1.000,1.000,57,0",
        f"{b.youtube_id},{kb:.6f},0.200,0.100,1.200,0.800,3,1",  # line 5: x2 > 1
        f"{NO_SUCH_ID},12.000000,0.100,0.100,0.200,0.200,5,0",  # line 6: no clip
    ]
    return "\n".join(rows) + "\n"


class Roots(NamedTuple):
    countix: Path
    ava: Path
    clips: Clips
    lead: float  # the YouTube clip's start_offset (its lead-in, negative)


def download(release: str, root: Path, annotations: Path, server: MirrorServer) -> None:
    url = server.url.rstrip("/")
    argv = [
        "download", release, "--split", "val", "--root", str(root), "--mirror", url,
        "--annotations", str(annotations), "--source", "auto", "--trim", "fast",
        "--youtube-url-template", url + "/youtube/{youtube_id}.mp4", "--rate", "50",
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0


def build_roots(folder: Path, shared_kinetics: Path) -> Roots:
    """A Countix and an AVA-Kinetics root, each downloaded through the CLI from this mirror
    with ``--source auto --trim fast`` and this module's annotation files."""
    mirror = build(folder / "mirror", shared_kinetics)
    clips = mirror_clips(mirror)
    (folder / "countix_val.csv").write_text(countix_text(clips))
    (folder / "kinetics_val_v1.0.csv").write_text(ava_text(clips))
    with pytest.MonkeyPatch.context() as mp, MirrorServer(mirror.root) as server:
        mp.setenv("KINETIX_CACHE", str(folder / "cache"))
        download("countix", folder / "countix", folder / "countix_val.csv", server)
        download("ava-kinetics", folder / "ava", folder / "kinetics_val_v1.0.csv", server)
    with Manifest(manifest_path(folder / "countix"), readonly=True) as m:
        row = m.get("k700-2020", "val", clips.youtube.key)
        assert row is not None and row.values["trim"] == "fast"
        lead = float(row.values["start_offset"])
    assert lead < 0, "the fast trim starts at the keyframe before time_start"
    return Roots(folder / "countix", folder / "ava", clips, lead)
