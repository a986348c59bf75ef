"""A Countix or AVA-Kinetics root's rows on their clip files: what exports and loaders read.

A root made by ``kinetix download countix|ava-kinetics`` records every annotation row with its
K700-2020 clip (``store/downstream.py``) and keeps the annotation file it read them from. This
module joins the two: the row's numbers (count, repetition span, keyframe, boxes, actions) from
the file, the clip's place in its video (``fps``, ``start_offset``, ``num_frames``) from the
manifest, and re-expresses the row on the clip file (``catalog/relative.py``). Nothing is
probed.

Three kinds of row come out:

- **items**: usable, clip present (and verified good unless ``include_unverified``);
- **not present**: the row is fine but its clip is not on disk (unresolved, not fetched,
  failed ...). Data, not an error: counted by reason and listed;
- **rejected**: the row cannot be right: a box outside [0, 1], a repetition span outside its
  clip, a count <= 0 (kept out when the file was read, ``catalog/downstream.py``), or a span
  that starts past the last frame of the clip file. Reported with file, line and text, never
  clamped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kinetix.catalog.downstream import (
    AVA_NUM_CLASSES,
    AvaRow,
    CountixRow,
    RejectedRow,
    get_downstream,
    read_downstream,
)
from kinetix.catalog.relative import (
    ClipTiming,
    CountixOnClip,
    KeyframeOnClip,
    countix_on_clip,
    keyframe_on_clip,
)
from kinetix.data.index import LabelIndexer
from kinetix.errors import ConfigError
from kinetix.store.downstream import (
    DownstreamRow,
    annotation_copy,
    clip_facts,
    downstream_info,
    downstream_rows,
    reason_label,
)
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest

log = logging.getLogger(__name__)

SPAN_OUTSIDE_FILE = "span_outside_file"  # the clip file ends before the repetition starts
KEYFRAME_OUTSIDE_FILE = "keyframe_outside_file"  # the clip file ends before the keyframe
NOT_PROBED = "not_probed"  # no fps / frame count recorded for the clip: run kinetix verify


@dataclass(frozen=True)
class ClipFile:
    """The clip file a row is on, as the manifest records it."""

    key: str
    path: str  # relative to the root
    label: str | None
    label_index: int
    timing: ClipTiming
    time_end: int  # the annotated segment's end, seconds of the video
    width: int | None
    height: int | None

    @property
    def num_frames(self) -> int:
        assert self.timing.num_frames is not None  # rows without one are rejected
        return self.timing.num_frames


@dataclass(frozen=True)
class CountixItem:
    """A Countix row on its clip: the count and the repetition span in clip seconds/frames."""

    row: CountixRow
    clip: ClipFile
    span: CountixOnClip

    @property
    def label(self) -> str | None:
        return self.row.label or self.clip.label


@dataclass(frozen=True)
class AvaKeyframe:
    """One AVA-Kinetics keyframe on its clip: its boxes, each with its actions (and person).

    A keyframe has one file row per (box, action); rows with the same box and person are one
    box here, with every action they name (as mmaction2's ``AVADataset`` merges them).
    """

    youtube_id: str
    timestamp: float  # seconds of the video
    lines: tuple[int, ...]  # file lines of its rows
    clip: ClipFile
    keyframe: KeyframeOnClip
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # x1, y1, x2, y2 in [0, 1]
    actions: tuple[tuple[int, ...], ...] = ()  # per box, AVA action ids 1..80
    persons: tuple[int, ...] = ()  # per box, -1 when the file has no person column

    def multi_hot(self) -> np.ndarray:
        """(N, 80) float32: column ``a - 1`` set for each action id ``a`` of each box."""
        labels = np.zeros((len(self.boxes), AVA_NUM_CLASSES), dtype=np.float32)
        for i, ids in enumerate(self.actions):
            labels[i, [a - 1 for a in ids]] = 1.0
        return labels


@dataclass
class DownstreamSplit:
    """One split of a downstream root: usable items, rows not present, rows rejected."""

    release: str  # countix | ava-kinetics
    split: str
    root: Path
    annotation_file: Path
    items: list[CountixItem] | list[AvaKeyframe]
    not_present: list[DownstreamRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    def left_out(self) -> Counter[str]:
        """Rows not used, by reason: ``no_clip``, ``not_fetched``, ``rejected:CODE`` ..."""
        reasons: Counter[str] = Counter()
        for row in self.not_present:
            reasons[reason_label(row.state, row.reason)] += 1
        for bad in self.rejected:
            reasons[f"rejected:{bad.reason}"] += 1
        return reasons


def require_downstream(root: Path, release: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The annotation set and splits of ``root``; a one-line error for any other root."""
    with Manifest(manifest_path(root), readonly=True) as manifest:
        info = downstream_info(manifest)
    wanted = release or "countix or ava-kinetics"
    if info is None:
        raise ConfigError(
            f"{root} holds no {wanted} annotation rows; make it with "
            f"`kinetix download {release or 'countix'} --split SPLIT --root {root}`"
        )
    if release is not None and info.release != release:
        raise ConfigError(f"{root} holds {info.release} rows, not {release}")
    return info.release, info.splits


def load_downstream(
    root: str | Path,
    split: str,
    *,
    release: str | None = None,
    include_unverified: bool = False,
) -> DownstreamSplit:
    """The rows of ``split`` of a Countix or AVA-Kinetics root (see the module docstring)."""
    root = Path(root)
    name, splits = require_downstream(root, release)
    if split not in splits:
        raise ConfigError(
            f"{root} has no {name} split {split!r}; its splits are {', '.join(splits) or 'none'}"
        )
    rel = get_downstream(name)
    path = annotation_copy(root, rel.member(split))
    annotations = read_downstream(path, rel, split)
    with Manifest(manifest_path(root), readonly=True) as manifest:
        recorded = list(downstream_rows(manifest, split))
        base = manifest.get_meta("release") or rel.base
        facts = clip_facts(manifest, base, split)
    result = DownstreamSplit(name, split, root, path, [], rejected=list(annotations.rejected))
    by_line = {r.line: r for r in annotations.rows}
    rejected_lines = {r.line for r in annotations.rejected}
    indexer = LabelIndexer()
    usable: dict[int, tuple[DownstreamRow, ClipFile]] = {}
    for rec in recorded:
        if rec.line in rejected_lines or rec.state == "rejected":
            continue  # reported from the file, with its column and text
        row = by_line.get(rec.line)
        if row is None:
            continue  # recorded from another version of the file: the copy is what is read
        verify = facts.get(rec.key or "", (None, None, None))[2]
        if not rec.present or verify == "bad" or (verify is None and not include_unverified):
            if rec.present:  # on disk but not usable: say why
                rec = _as_unusable(rec, "verified bad" if verify == "bad" else "not verified")
            result.not_present.append(rec)
            continue
        clip = _clip_file(rec, facts, base, indexer)
        if clip is None:
            result.rejected.append(
                _rejection(path, row, "key", NOT_PROBED, f"clip {rec.key} has no fps or frame "
                           f"count in the manifest; run `kinetix verify {root}`")
            )  # fmt: skip
            continue
        usable[rec.line] = (rec, clip)
    if name == "countix":
        result.items = _countix_items(annotations.rows, usable, path, result.rejected)  # type: ignore[arg-type]
    else:
        result.items = _ava_keyframes(annotations.rows, usable, path, result.rejected)  # type: ignore[arg-type]
    result.rejected.sort(key=lambda r: r.line)
    return result


def _as_unusable(rec: DownstreamRow, why: str) -> DownstreamRow:
    """A row whose clip is on disk but not usable: its state says why (``not verified``)."""
    return replace(rec, state=why, reason=None)


def _clip_file(
    rec: DownstreamRow,
    facts: dict[str, tuple[str | None, int | None, str | None]],
    release: str,
    indexer: LabelIndexer,
) -> ClipFile | None:
    if (
        rec.fps is None
        or not rec.fps > 0
        or not rec.num_frames
        or rec.time_start is None
        or rec.time_end is None
    ):
        return None
    assert rec.key is not None and rec.path is not None
    label, stored, _ = facts.get(rec.key, (None, None, None))
    timing = ClipTiming(rec.time_start, float(rec.fps), rec.start_offset or 0.0, rec.num_frames)
    return ClipFile(
        rec.key, rec.path, label, indexer(release, label, stored), timing, rec.time_end,
        rec.width, rec.height,
    )  # fmt: skip


def _rejection(
    path: Path, row: CountixRow | AvaRow, column: str, reason: str, message: str
) -> RejectedRow:
    return RejectedRow(str(path), row.line, column, reason, message, row_text(row))


def row_text(row: CountixRow | AvaRow) -> str:
    """The row as a line of its file (the numbers as read)."""
    if isinstance(row, CountixRow):
        return (
            f"{row.youtube_id},{row.label or ''},{row.time_start},{row.time_end},"
            f"{row.repetition_start:.6f},{row.repetition_end:.6f},{row.count}"
        )
    fields = [row.youtube_id, f"{row.timestamp:.6f}"]
    if row.box is not None:
        fields += [f"{v:.3f}" for v in row.box] + [str(row.action)]
    if row.person is not None:
        fields.append(str(row.person))
    return ",".join(fields)


def _countix_items(
    rows: Sequence[CountixRow],
    usable: dict[int, tuple[DownstreamRow, ClipFile]],
    path: Path,
    rejected: list[RejectedRow],
) -> list[CountixItem]:
    items: list[CountixItem] = []
    for row in rows:
        found = usable.get(row.line)
        if found is None:
            continue
        clip = found[1]
        span = countix_on_clip(row, clip.timing)
        if span.start_frame >= clip.num_frames or span.end_frame <= span.start_frame:
            rejected.append(
                _rejection(
                    path, row, "repetition_start", SPAN_OUTSIDE_FILE,
                    f"repetition span {row.repetition_start:g}-{row.repetition_end:g} s is frames "
                    f"{span.start_frame}-{span.end_frame} of a clip file of {clip.num_frames}",
                )
            )  # fmt: skip
            continue
        items.append(CountixItem(row, clip, span))
    return items


def _ava_keyframes(
    rows: Sequence[AvaRow],
    usable: dict[int, tuple[DownstreamRow, ClipFile]],
    path: Path,
    rejected: list[RejectedRow],
) -> list[AvaKeyframe]:
    """Rows grouped by keyframe (file order of first appearance), boxes merged per person."""
    groups: dict[tuple[str, float], list[AvaRow]] = {}
    clips: dict[tuple[str, float], ClipFile] = {}
    for row in rows:
        found = usable.get(row.line)
        if found is None:
            continue
        key = (row.youtube_id, row.timestamp)
        groups.setdefault(key, []).append(row)
        clips.setdefault(key, found[1])
    keyframes: list[AvaKeyframe] = []
    for key, members in groups.items():
        clip = clips[key]
        on_clip = keyframe_on_clip(members[0], clip.timing)
        if not 0 <= on_clip.frame < clip.num_frames:
            for row in members:
                rejected.append(
                    _rejection(
                        path, row, "timestamp", KEYFRAME_OUTSIDE_FILE,
                        f"keyframe {row.timestamp:g} s is frame {on_clip.frame} of a clip file "
                        f"of {clip.num_frames}",
                    )
                )  # fmt: skip
            continue
        boxes: dict[tuple[tuple[float, float, float, float], int], list[int]] = {}
        for row in members:
            if row.box is None or row.action is None:
                continue  # a test row: the keyframe only
            ids = boxes.setdefault((row.box, -1 if row.person is None else row.person), [])
            if row.action not in ids:
                ids.append(row.action)
        keyframes.append(
            AvaKeyframe(
                key[0], key[1], tuple(r.line for r in members), clip, on_clip,
                boxes=tuple(box for box, _ in boxes),
                actions=tuple(tuple(sorted(ids)) for ids in boxes.values()),
                persons=tuple(person for _, person in boxes),
            )
        )  # fmt: skip
    return keyframes
