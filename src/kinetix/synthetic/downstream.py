"""The synthetic mirror's AVA-Kinetics and Countix tarballs: real rows where they exist.

What each member holds:

============================  ==============================================================
member                        rows
============================  ==============================================================
``countix/countix_train.csv``  the real file (SOURCES.md)
``countix/countix_val.csv``    the real file
``countix/countix_test.csv``   GENERATED in the real shape (no ``class`` column), from real
                              K700-2020 test segments: the real test file is not obtainable
``…/kinetics_test_v1.0.csv``   the real AVA-Kinetics test file (``youtube_id,timestamp``)
``…/kinetics_val_v1.0.csv``    GENERATED: real K700-2020 val segments, a keyframe in each,
                              1-3 person boxes with 1-3 AVA actions each (7 columns)
``…/kinetics_train_v1.0.csv``  GENERATED the same way from the real K700 train segments that
                              Countix train names (no K700-2020 train file is obtainable)
============================  ==============================================================

``forced_clips`` picks, per K700-2020 split the mirror hosts, a few rows of each set that
resolve against the real K700-2020 rows, so the mirror's shards hold their clips.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.downstream import DOWNSTREAM, read_downstream
from kinetix.catalog.resolve import resolve
from kinetix.errors import ConfigError

_MTIME = 1_600_000_000
COUNTIX_FOLDER = "countix"
AVA_FOLDER = "ava_kinetics_v1_0"
GENERATED_ROWS = 600  # segments per generated file


@dataclass(frozen=True)
class DownstreamFile:
    release: str
    split: str
    member: str  # path inside the tarball
    text: str
    generated: bool


def _rank(seed: int, *parts: object) -> int:
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def _segments(clips: Iterable[Clip], seed: int, salt: str, count: int) -> list[Clip]:
    unique = {(c.youtube_id, c.time_start, c.time_end): c for c in clips}
    ranked = sorted(unique.values(), key=lambda c: _rank(seed, salt, c.key))
    return ranked[:count]


def countix_test_text(segments: Sequence[Clip], seed: int) -> str:
    lines = ["video_id,kinetics_start,kinetics_end,repetition_start,repetition_end,count\n"]
    for c in sorted(segments, key=lambda c: (c.youtube_id, c.time_start)):
        r = _rank(seed, "countix", c.key)
        span = c.time_end - c.time_start
        start = c.time_start + (r % 1000) / 1000 * span * 0.3
        end = c.time_end - ((r >> 10) % 1000) / 1000 * span * 0.3
        lines.append(
            f"{c.youtube_id},{c.time_start},{c.time_end},{start:.6f},{end:.6f},{2 + r % 19}\n"
        )
    return "".join(lines)


def ava_text(segments: Sequence[Clip], seed: int) -> str:
    """``youtube_id,timestamp,x1,y1,x2,y2,action_id`` rows, one keyframe per segment."""
    lines: list[str] = []
    for c in sorted(segments, key=lambda c: (c.youtube_id, c.time_start)):
        r = _rank(seed, "ava", c.key)
        span = max(1, c.time_end - c.time_start - 2)
        timestamp = c.time_start + 1 + r % span
        for person in range(1 + r % 3):
            p = _rank(seed, "box", c.key, person)
            x1, y1 = (p % 400) / 1000, ((p >> 10) % 400) / 1000
            x2, y2 = x1 + 0.2 + ((p >> 20) % 400) / 1000, y1 + 0.3 + ((p >> 30) % 300) / 1000
            actions = sorted({1 + (p >> (40 + 6 * a)) % 80 for a in range(1 + (p >> 38) % 3)})
            for action in actions:
                lines.append(
                    f"{c.youtube_id},{timestamp:.6f},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{action}\n"
                )
    return "".join(lines)


def countix_train_segments(data_dir: Path) -> list[Clip]:
    """The K700 train segments Countix train names (real rows, labelled by Countix's class)."""
    path = data_dir / "countix" / "countix_train.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return [
            Clip("k700-2020", "train", r["video_id"], int(r["kinetics_start"]),
                 int(r["kinetics_end"]), r["class"])
            for r in csv.DictReader(f)
        ]  # fmt: skip


def downstream_files(
    data_dir: Path | None, k700_rows: Mapping[str, Sequence[Clip]], seed: int
) -> list[DownstreamFile]:
    """Every member of both tarballs; ``k700_rows`` are the real K700-2020 val/test rows."""
    if data_dir is None:
        raise ConfigError(
            "the AVA-Kinetics and Countix tarballs need the real metadata folder "
            "(../shared/data/kinetics or $KINETIX_SHARED_DATA)"
        )
    countix = DOWNSTREAM["countix"].members
    ava = DOWNSTREAM["ava-kinetics"].members
    files = [
        DownstreamFile(
            "countix", split, f"{COUNTIX_FOLDER}/{countix[split]}",
            (data_dir / "countix" / countix[split]).read_text(encoding="utf-8"), False,
        )
        for split in ("train", "val")
    ]  # fmt: skip
    test = _segments(k700_rows["test"], seed, "countix-test", GENERATED_ROWS)
    files.append(
        DownstreamFile(
            "countix", "test", f"{COUNTIX_FOLDER}/{countix['test']}",
            countix_test_text(test, seed), True,
        )
    )  # fmt: skip
    train = _segments(countix_train_segments(data_dir), seed, "ava-train", GENERATED_ROWS)
    val = _segments(k700_rows["val"], seed, "ava-val", GENERATED_ROWS)
    files += [
        DownstreamFile("ava-kinetics", "train", f"{AVA_FOLDER}/{ava['train']}",
                       ava_text(train, seed), True),
        DownstreamFile("ava-kinetics", "val", f"{AVA_FOLDER}/{ava['val']}",
                       ava_text(val, seed), True),
        DownstreamFile(
            "ava-kinetics", "test", f"{AVA_FOLDER}/{ava['test']}",
            (data_dir / "ava_kinetics" / ava["test"]).read_text(encoding="utf-8"), False,
        ),
    ]  # fmt: skip
    return files


def forced_clips(
    files: Sequence[DownstreamFile], split: str, k700_rows: Sequence[Clip], count: int, seed: int
) -> dict[str, list[str]]:
    """Per set, keys of K700-2020 ``split`` clips that ``count`` of its rows resolve to."""
    chosen: dict[str, list[str]] = {}
    if count <= 0:
        return chosen
    with tempfile.TemporaryDirectory(prefix="kx-downstream-") as tmp:
        for file in files:
            if file.split != split:
                continue
            path = Path(tmp) / Path(file.member).name
            path.write_text(file.text, encoding="utf-8")
            resolution = resolve(read_downstream(path, file.release, split), k700_rows)
            needed = sorted(resolution.needed(), key=lambda c: _rank(seed, "force", c.key))
            chosen[file.release] = [c.key for c in needed[:count]]
    return chosen


def write_tarball(path: Path, folder: str, files: Sequence[DownstreamFile]) -> None:
    """A ``tar czf`` of ``folder/`` and its CSVs, byte-identical for the same rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as raw:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            info = tarfile.TarInfo(f"{folder}/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
            tar.addfile(info)
            for file in files:
                data = file.text.encode("utf-8")
                info = tarfile.TarInfo(file.member)
                info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
                tar.addfile(info, io.BytesIO(data))
        gz.close()
    tmp.replace(path)
