"""Which clips a run is about: classes, ids or keys, and a seeded per-class sample."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import YOUTUBE_ID_CHARS, YOUTUBE_ID_LENGTH
from kinetix.config import Selection
from kinetix.errors import ConfigError

logger = logging.getLogger(__name__)


def read_class_file(path: str | Path) -> tuple[str, ...]:
    """Class names, one per line, in any label style; blank lines and ``#`` comments skipped."""
    return _read_list(path, "class")


def read_ids_file(path: str | Path) -> tuple[str, ...]:
    """YouTube ids or clip keys, one per line; blank lines and ``#`` comments skipped."""
    ids = _read_list(path, "id")
    for number, item in enumerate(ids, start=1):
        if _parse_id(item) is None:
            raise ConfigError(f"{path}: entry {number} {item!r} is not a youtube id or clip key")
    return ids


def select_clips(
    clips: Sequence[Clip], selection: Selection, registry: LabelRegistry
) -> list[Clip]:
    """The clips a selection asks for, in their input order.

    Filters apply in turn: ``ids`` (youtube ids or clip keys), then ``classes`` (any label
    style, resolved by ``registry``; a typo raises ``ConfigError`` with suggestions), then
    ``max_per_class``. The per-class sample keeps the ``N`` clips whose keys hash lowest
    with ``seed``, so it is the same on every run and machine, does not depend on row order,
    and mostly survives the annotation file gaining or losing rows. Unlabelled clips form
    one group of their own.
    """
    chosen: Sequence[Clip] = clips
    if selection.ids is not None:
        chosen = _by_ids(chosen, selection.ids)
    if selection.classes is not None:
        chosen = _by_classes(chosen, selection.classes, registry)
    if selection.max_per_class is not None:
        chosen = _sample_per_class(chosen, selection.max_per_class, selection.seed)
    return list(chosen)


def match_keyframes(
    keyframes: Iterable[Clip], clips: Sequence[Clip]
) -> tuple[list[Clip], list[Clip]]:
    """Put AVA-Kinetics keyframes onto the Kinetics clips that contain them.

    ``keyframes`` are clips read from an AVA-Kinetics file (``extra["timestamp"]`` set, a
    window around it as segment); ``clips`` are the K700 annotations of the same split.
    Returns ``(matched, unmatched)``: ``matched`` holds the containing K700 clip of each
    keyframe, with the keyframe's ``timestamp`` added to its ``extra``; ``unmatched`` the
    keyframes no clip of ``clips`` contains, unchanged.
    """
    by_id: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_id[clip.youtube_id].append(clip)
    matched: list[Clip] = []
    unmatched: list[Clip] = []
    for keyframe in keyframes:
        timestamp = (keyframe.extra or {}).get("timestamp")
        if timestamp is None:
            raise ConfigError(f"{keyframe.key} is not an AVA-Kinetics keyframe (no timestamp)")
        home = next(
            (
                c
                for c in by_id.get(keyframe.youtube_id, ())
                if c.time_start <= timestamp <= c.time_end
            ),
            None,
        )
        if home is None:
            unmatched.append(keyframe)
        else:
            matched.append(home._replace(extra={**(home.extra or {}), "timestamp": timestamp}))
    return matched, unmatched


def _read_list(path: str | Path, what: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} file {path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            "save it as UTF-8, one entry a line"
        ) from None
    items = (line.strip() for line in text.splitlines())
    return tuple(item for item in items if item and not item.startswith("#"))


def _parse_id(item: str) -> tuple[str, int, int] | str | None:
    """A youtube id as itself, a clip key as ``(id, start, end)``, anything else as None."""
    if len(item) == YOUTUBE_ID_LENGTH and not item.strip(YOUTUBE_ID_CHARS):
        return item
    parts = item.rsplit("_", 2)
    if (
        len(parts) == 3
        and len(parts[0]) == YOUTUBE_ID_LENGTH
        and not parts[0].strip(YOUTUBE_ID_CHARS)
        and all(p.isascii() and p.isdigit() for p in parts[1:])
    ):
        return parts[0], int(parts[1]), int(parts[2])
    return None


def _by_ids(clips: Sequence[Clip], wanted: Iterable[str]) -> list[Clip]:
    ids: set[str] = set()
    spans: set[tuple[str, int, int]] = set()
    for item in wanted:
        parsed = _parse_id(item)
        if parsed is None:
            raise ConfigError(f"{item!r} is not a youtube id or clip key (<id>_SSSSSS_EEEEEE)")
        if isinstance(parsed, str):
            ids.add(parsed)
        else:
            spans.add(parsed)
    span_ids = {s[0] for s in spans}
    # Comparing (id, start, end) avoids building a key string for each of ~650k clips.
    chosen = [
        c
        for c in clips
        if c.youtube_id in ids
        or (c.youtube_id in span_ids and (c.youtube_id, c.time_start, c.time_end) in spans)
    ]
    missing = (ids - {c.youtube_id for c in chosen}) | {
        f"{i}_{s:06d}_{e:06d}"
        for i, s, e in spans - {(c.youtube_id, c.time_start, c.time_end) for c in chosen}
    }
    if missing:
        logger.warning(
            "%d of the %d requested ids/keys are not in these annotations: %s%s",
            len(missing), len(ids) + len(spans), ", ".join(sorted(missing)[:5]),
            " ..." if len(missing) > 5 else "",
        )  # fmt: skip
    return chosen


def _by_classes(
    clips: Sequence[Clip], wanted: Iterable[str], registry: LabelRegistry
) -> list[Clip]:
    names = {registry.resolve(spelling) for spelling in wanted}
    # Clip labels are spelled as in their file; resolve each distinct spelling once.
    canonical: dict[str, str | None] = {}
    chosen = []
    for clip in clips:
        label = clip.label
        if label is None:
            continue
        if label not in canonical:
            canonical[label] = registry.resolve(label) if label in registry else None
        if canonical[label] in names:
            chosen.append(clip)
    empty = names - {canonical[c.label] for c in chosen if c.label is not None}
    if empty:
        logger.warning(
            "no clips of class %s in these annotations", ", ".join(map(repr, sorted(empty)))
        )
    return chosen


def _sample_per_class(clips: Sequence[Clip], limit: int, seed: int) -> list[Clip]:
    groups: dict[str | None, list[tuple[bytes, int]]] = defaultdict(list)
    salt = f"{seed}\0".encode()
    for position, clip in enumerate(clips):
        rank = hashlib.blake2b(salt + clip.key.encode(), digest_size=8).digest()
        groups[clip.label].append((rank, position))
    keep: set[int] = set()
    for members in groups.values():
        members.sort()
        keep.update(position for _, position in members[:limit])
    return [clip for position, clip in enumerate(clips) if position in keep]
