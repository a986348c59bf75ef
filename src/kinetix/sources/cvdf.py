"""The CVDF mirror as a clip source: plan shard tasks from missing clips, fetch and extract a shard.

Planning runs in the parent (it reads the manifest's shard index and the path list); each
``ShardTask`` runs in a worker, streams the shard through ``ShardDownload`` into the extractor
and hands back a ``TaskResult``: one ``ClipUpdate`` per clip placed, the shard's member list.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import unquote

from kinetix.catalog.clip import key_span
from kinetix.catalog.releases import CVDF_BASE, Release, encode_url, join_url
from kinetix.config import TransferConfig, VerifyConfig
from kinetix.errors import ArchiveError, DiskSpaceError, ErrorCode, KinetixError, TransferError
from kinetix.interrupts import StopToken
from kinetix.sources.base import ClipSpan, TaskResult
from kinetix.store.layout import LabelStyle, clip_relpath, quarantine_dir
from kinetix.store.manifest import ClipState, ClipUpdate
from kinetix.transfer.extract import (
    DEFAULT_MAX_CLIP_BYTES,
    ExtractedClip,
    ExtractPlan,
    MemberVerdict,
    extract_stream,
)
from kinetix.transfer.integrity import Integrity, md5_from_etag
from kinetix.transfer.prefetch import adopt
from kinetix.transfer.shard import ShardDownload

if TYPE_CHECKING:
    from kinetix.process.landing import LandingSpec

log = logging.getLogger(__name__)

_REL_FORMAT = "{}{}.mp4".format  # a clip's path under the root: class folder, key, ".mp4"
INTERRUPTED = "interrupted"  # a task result's error_code when a stop cut it short; never recorded
_K700_2020_SHARD = re.compile(r"k700_(?:train|val|validate)_(\d+)$")


@dataclass(frozen=True)
class ShardTask:
    """One shard to fetch and the clips wanted from it; picklable for any executor."""

    url: str  # percent-encoded, on the mirror in use
    shard_id: str  # where CVDF keeps it: the shard's identity in the manifest, whatever mirror
    name: str  # path under the mirror base, for messages: "400/val/part_3.tar.gz"
    release: str
    split: str
    root: str
    wanted: dict[str, str]  # clip key -> path relative to root
    part_path: str
    transfer: TransferConfig
    source: str = "cvdf"  # cvdf | cvdf_replacement
    archive_path: str | None = None  # --keep-archives: where the finished shard goes
    verify: VerifyConfig | None = field(default_factory=VerifyConfig)  # inline check; None: off
    max_member_bytes: int = DEFAULT_MAX_CLIP_BYTES  # --max-clip-size
    # State of a clip whose copy here is refused (unsafe, oversized, twice) or set aside (not a
    # whole MP4, or failing the inline check): "missing"
    # when the K400 replacement set may still provide it (the decision is in the manifest with
    # the shard's own record, so it survives a kill), else "failed".
    refused_state: str = ClipState.FAILED.value
    landing: LandingSpec | None = None  # fused processing: what each clip becomes as it lands


class RootedPaths(Mapping[str, Path]):
    """``key -> root / relpath`` computed on lookup: no Path per wanted clip per shard."""

    def __init__(self, root: Path, relpaths: Mapping[str, str]):
        self._root = root
        self._relpaths = relpaths

    def __getitem__(self, key: str) -> Path:
        return self._root / self._relpaths[key]

    def __contains__(self, key: object) -> bool:
        return key in self._relpaths

    def __iter__(self) -> Iterator[str]:
        return iter(self._relpaths)

    def __len__(self) -> int:
        return len(self._relpaths)


@dataclass
class ShardPlan:
    """The tasks a run needs, and which shards could hold each wanted clip."""

    tasks: list[ShardTask] = field(default_factory=list)
    # key -> shard URLs; clips with the same candidates share one frozenset (545k sets of one
    # URL would be ~120 MB and a set built per clip)
    candidates: dict[str, frozenset[str]] = field(default_factory=dict)
    mixed: bool = False  # some clips could be in any shard (class-mixed shards)


def shard_id(name: str) -> str:
    """A shard's identity in the manifest: its CVDF URL, so an index built from one mirror
    (an internal copy, the synthetic one on a random port) holds for any other."""
    return join_url(CVDF_BASE, name)


def mirror_url(line: str, mirror: str | None, top: str | None = None) -> tuple[str, str]:
    """A path-list line -> (encoded URL on the mirror in use, path under the CVDF base).

    A line is keyed by where CVDF keeps the shard, whatever host it names: the official base,
    or any mirror (one that rewrote its lists with its own, maybe dead, address) when its path
    holds the release folder ``top`` (``"400/"``). The mirror in use is applied only here, when
    the URL is built, so a rerun with another ``--mirror`` never asks the old host.
    """
    line = line.strip()
    if line.startswith(CVDF_BASE):
        name = unquote(line[len(CVDF_BASE) :])
        return join_url(mirror or CVDF_BASE, name), name
    path = unquote(line.split("://", 1)[-1].partition("/")[2])
    if top and (path.startswith(top) or f"/{top}" in path):
        name = path if path.startswith(top) else path[path.index(f"/{top}") + 1 :]
        return join_url(mirror or CVDF_BASE, name), name
    return encode_url(line), path


def read_path_list(text: str, mirror: str | None, where: str) -> list[tuple[str, str]]:
    """Parse a CVDF ``k*_path.txt`` (one URL a line) into (url, name) pairs.

    ``where`` is the list's own path under the base (``400/val/k400_val_path.txt``); its first
    folder is the release folder every shard of the list lives under.
    """
    top = where.split("/", 1)[0] + "/" if "/" in where else None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "://" not in line:
            raise KinetixError(
                f"{where}:{number}: expected a shard URL, got {line.strip()[:80]!r}; "
                "the path list is damaged: delete it and rerun to fetch it again"
            )
        pairs.append(mirror_url(line, mirror, top))
    return pairs


def shard_stem(name: str) -> str:
    """``600/train/massaging person's head.tar.gz`` -> ``massaging person's head``."""
    base = PurePosixPath(name).name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


NO_SHARD = ""  # a class-organised path list that has no shard for this class


def shard_for_label(
    shards: Sequence[tuple[str, str]], labels: Sequence[str]
) -> Callable[[str | None], str | None]:
    """How a release's shards map to classes: K600 tars are named by label, K700-2020's numbered.

    Returns, per label, the shard URL; ``NO_SHARD`` when the list is organised by class but
    lacks this one; ``None`` when shards mix classes (K400, every test split) and the clip
    could be in any of them.
    """
    by_stem = {shard_stem(name): url for url, name in shards}
    if any(label in by_stem for label in labels):
        return lambda label: None if label is None else by_stem.get(label, NO_SHARD)
    numbered = {}
    for url, name in shards:
        m = _K700_2020_SHARD.search(shard_stem(name))
        if m:
            numbered[int(m.group(1))] = url
    if numbered:
        # K700-2020 numbers its train/val shards 1-based in the sorted label order.
        index = {label: i for i, label in enumerate(sorted(labels), 1)}
        return lambda label: None if label is None else numbered.get(index.get(label, -1), NO_SHARD)
    return lambda label: None


def plan_shards(
    rows: Sequence[ClipSpan],
    shards: Sequence[tuple[str, str]],
    *,
    listed: dict[str, str],
    done: set[str],
    labels: Sequence[str],
    root: Path,
    layout: LabelStyle,
    partial: Path,
    transfer: TransferConfig,
    release: Release,
    split: str,
    keep_archives: Path | None = None,
    max_member_bytes: int = DEFAULT_MAX_CLIP_BYTES,
    refused_state: str = ClipState.FAILED.value,
    verify: VerifyConfig | None = VerifyConfig(),  # noqa: B008 - frozen
    landing: LandingSpec | None = None,
) -> ShardPlan:
    """Group missing clips into shard tasks.

    A clip goes to the shard the manifest's index says holds it; else to its class's shard;
    else (class-mixed shards) to every shard not yet read. Shards already read in full
    (``done``) are never planned for clips they were seen not to hold.
    """
    fetch_url = {shard_id(name): url for url, name in shards}
    shards = [(shard_id(name), name) for _, name in shards]  # plan on identities
    label_shard = shard_for_label(shards, labels)
    names = dict(shards)
    unread = frozenset(url for url, _ in shards if url not in done)
    everywhere = frozenset(names)
    plan = ShardPlan()
    # Column-wise, in C where it can be: the per-row work is a few map() passes and one tight
    # loop, the rest is done once per class (~545k rows, one of 700 classes each).
    keys = list(map(attrgetter("key"), rows))
    spans = list(map(attrgetter("split", "label"), rows))
    # per (split, label): its shard and its folder, worked out once, not once per clip
    classes: dict[tuple[str, str | None], tuple[str | None, str]] = {}
    for split_label in dict.fromkeys(spans):
        folder = clip_relpath(split_label[0], split_label[1], "", layout)[: -len(".mp4")]
        classes[split_label] = (label_shard(split_label[1]), folder)
    class_url = {c: url for c, (url, _) in classes.items()}
    urls: list[str | None] = list(map(class_url.__getitem__, spans))
    if listed:  # the manifest's shard index knows where some clips are
        urls = [listed.get(key) or url for key, url in zip(keys, urls)]
    class_folder = {c: folder for c, (_, folder) in classes.items()}
    rels = list(map(_REL_FORMAT, map(class_folder.__getitem__, spans), keys))
    del spans
    # NO_SHARD: the mirror has no shard for its class; a listed URL: that shard only; else
    # (None, or a URL not in the list) every shard, the clip could be anywhere
    nowhere: frozenset[str] = frozenset()
    each = {
        url: nowhere if url == NO_SHARD else frozenset((url,)) if url in names else everywhere
        for url in dict.fromkeys(urls)
    }
    plan.candidates.update(zip(keys, map(each.__getitem__, urls)))
    by_url: dict[str | None, dict[str, str]] = defaultdict(dict)
    for key, url, rel in zip(keys, urls, rels):
        by_url[url][key] = rel
    single = {url: mine for url, mine in by_url.items() if url in names}
    # Clips that could be anywhere share one dict across every unread shard: at K400 scale a
    # copy per shard would be 240 shards x 240k entries.
    spread = [url for url in by_url if url != NO_SHARD and url not in names]
    anywhere: dict[str, str]
    if len(spread) == 1:
        anywhere = by_url[spread[0]]
    else:  # in row order, as one pass over the rows would add them
        far = set(spread)
        anywhere = {key: rel for key, url, rel in zip(keys, urls, rels) if url in far}
    plan.mixed = bool(anywhere)
    del by_url, keys, urls, rels
    wanted: dict[str, dict[str, str]] = {}
    for url in names:
        mine = single.get(url, {})
        if url in unread and anywhere:
            wanted[url] = {**anywhere, **mine} if mine else anywhere
        elif mine and (url in unread or any(listed.get(k) == url for k in mine)):
            wanted[url] = mine
    for ident, clips in wanted.items():
        plan.tasks.append(
            shard_task(fetch_url[ident], names[ident], clips, root=root, partial=partial,
                       transfer=transfer, release=release.name, split=split,
                       keep_archives=keep_archives, max_member_bytes=max_member_bytes,
                       refused_state=refused_state, verify=verify, landing=landing)
        )  # fmt: skip
    plan.tasks.sort(key=lambda t: t.name)  # cvdf_source.head_start starts the first by name too
    return plan


def part_path_of(partial: Path, name: str) -> Path:
    """Where the shard ``name`` (its path on CVDF) is downloaded to, under ``partial``."""
    return partial / (name.replace("/", "__") + ".part")


def shard_task(
    url: str,
    name: str,
    wanted: dict[str, str],
    *,
    root: Path,
    partial: Path,
    transfer: TransferConfig,
    release: str,
    split: str,
    keep_archives: Path | None = None,
    source: str = "cvdf",
    verify: VerifyConfig | None = VerifyConfig(),  # noqa: B008 - frozen
    max_member_bytes: int = DEFAULT_MAX_CLIP_BYTES,
    refused_state: str = ClipState.FAILED.value,
    landing: LandingSpec | None = None,
) -> ShardTask:
    return ShardTask(
        url=url,
        shard_id=shard_id(name),
        name=name,
        release=release,
        split=split,
        root=str(root),
        wanted=wanted,
        part_path=str(part_path_of(partial, name)),
        transfer=transfer,
        source=source,
        archive_path=None if keep_archives is None else str(keep_archives / name),
        verify=verify,
        max_member_bytes=max_member_bytes,
        refused_state=refused_state,
        landing=landing,
    )


def inline_check(
    config: VerifyConfig, *, tail: bool = True
) -> Callable[[str, Path], MemberVerdict]:
    """The check each extracted clip passes before it is placed: ``verify``'s, on its temp
    (``tail=False``: without decoding the last GOP, for fused processing, which decodes it)."""
    from kinetix.process.verify import inspect_clip  # PyAV: only workers that extract need it

    def check(key: str, path: Path) -> MemberVerdict:
        fields = inspect_clip(path, key_span(key), 0.0, config, tail=tail)
        return MemberVerdict(fields["verify"] == "good", fields)

    return check


def fetch_shard(
    task: ShardTask,
    progress: Callable[[int], None] | None = None,
    stop: StopToken | None = None,
) -> TaskResult:
    """Download one shard and extract the wanted clips while the bytes arrive (in a worker).

    A corrupt archive is fetched again from scratch once before the shard is reported failed;
    nothing from a corrupt pass is ever placed. Expected failures become a failed result.
    When ``stop`` is set the transfer is aborted (its partial kept for resume) and the result
    says ``interrupted``; a shard that already committed its clips still reports them.
    """
    if stop is None:
        return _fetch_shard(task, progress)
    if stop.is_set():
        return interrupted(task)
    result = _fetch_shard(task, progress, stop)
    if result.error is not None and stop.is_set():
        return interrupted(task, result.bytes_transferred)  # the failure is the abort's doing
    return result


def interrupted(task: ShardTask, transferred: int = 0) -> TaskResult:
    """The result of a shard task stopped before it placed anything: nothing to record."""
    return TaskResult(
        shard_url=task.shard_id,
        bytes_transferred=transferred,
        error=f"shard {task.name}: interrupted",
        error_code=INTERRUPTED,
    )


def _fetch_shard(
    task: ShardTask,
    progress: Callable[[int], None] | None = None,
    stop: StopToken | None = None,
) -> TaskResult:
    root = Path(task.root)
    part = Path(task.part_path)
    transferred = 0
    lander = _Lander(task, root)
    check = lander.check if task.verify is not None or task.landing is not None else None
    quarantine = quarantine_dir(root)
    for attempt in (1, 2):
        # the run may have started this shard while it planned (transfer/prefetch.py)
        download = adopt(part) if attempt == 1 else None
        if download is None:
            download = ShardDownload(task.url, part, task.transfer, progress=progress)
        else:
            download.report_to(progress)
        try:
            with download, stop.on_stop(download.cancel) if stop else contextlib.nullcontext():
                plan = ExtractPlan(
                    root=lander.base, wanted=RootedPaths(lander.base, task.wanted),
                    check=check, quarantine=quarantine,
                    max_member_bytes=task.max_member_bytes,
                )  # fmt: skip
                reader = cast(BinaryIO, download.reader())  # a RawIOBase: read()/readinto()
                report = extract_stream(
                    reader,
                    plan,
                    name=task.name,
                    expected_md5=partial(_etag_md5, download),
                )
                result = download.finish()
            transferred += result.bytes_transferred
            break
        except ArchiveError as exc:
            transferred += download.bytes_transferred
            if exc.code is ErrorCode.CORRUPT_ARCHIVE and attempt == 1:
                # A bad CRC or MD5 may be one damaged piece of the partial file: start over.
                log.warning("%s; fetching it again from scratch", exc)
                discard_partial(part)
                continue
            discard_partial(part)
            return _failed(task, exc.code, str(exc), transferred)
        except TransferError as exc:
            return _failed(task, exc.code, str(exc), transferred + download.bytes_transferred)
        except DiskSpaceError as exc:
            return _failed(task, ErrorCode.NO_SPACE, str(exc), transferred)
        except OSError as exc:
            code = ErrorCode.NO_SPACE if exc.errno == errno.ENOSPC else ErrorCode.UNKNOWN
            message = f"writing clips of {task.name} under {root} failed: {exc}"
            if code is ErrorCode.NO_SPACE:
                message += "; the disk is full: free space and rerun (partial shard kept)"
            return _failed(task, code, message, transferred + download.bytes_transferred)
    # Kept files hold the shard's very bytes, checked like the rest (placed by a run killed
    # before it recorded them).
    placed = {**report.written, **report.kept_existing}
    updates = [lander.placed(key, clip, report.integrity) for key, clip in placed.items()]
    for key in placed:  # a copy an earlier check set aside is stale now
        (quarantine / task.wanted[key]).unlink(missing_ok=True)
    for key, clip in report.quarantined.items():
        assert clip.verdict is not None
        rel = clip.path.relative_to(root).as_posix()
        fields = dict(clip.verdict.fields)
        log.warning(
            "%s (shard %s): %s: %s; set aside in %s", task.wanted[key], task.name,
            fields["error_code"], fields["error_message"], rel,
        )  # fmt: skip
        # failed, not quarantined: the shard would serve the same bytes again, so a rerun
        # does not fetch it for this clip (--retry-failed does; --source auto asks YouTube).
        # In K400 train it waits (missing) for the replacement set instead.
        fields.update(
            state=task.refused_state, path=rel, bytes=clip.size, sha256=clip.sha256,
            source=task.source, shard=task.shard_id,
        )  # fmt: skip
        updates.append(ClipUpdate(task.release, task.split, key, fields, count_attempt=True))
    updates += [
        ClipUpdate(
            task.release,
            task.split,
            key,
            {
                "state": task.refused_state,
                "source": task.source,
                "shard": task.shard_id,
                "error_code": code.value,
                "error_message": reason,
            },
            count_attempt=True,
        )
        for key, (code, reason) in report.refused.items()
    ]
    members: dict[str, int | None] = dict(report.members)
    return TaskResult(
        updates=updates,
        shard_url=task.shard_id,
        shard_fields={
            "release": task.release,
            "split": task.split,
            "name": task.name,
            "size": result.size,
            "etag": result.etag,
            "bytes_done": result.size,
            "state": "done",
            "members": len(members),
            "error_code": None,
            "error_message": None,
        },
        shard_members=tuple(members.items()),
        bytes_transferred=transferred,
    )


class _Lander:
    """How one shard task's members become placed clips: checked as they land and, with a
    landing spec, resized or cut into frames too (fused processing), then placed."""

    def __init__(self, task: ShardTask, root: Path):
        self.task = task
        self.root = root
        self.spec = task.landing
        # originals land here: the root itself, or (fused) ROOT/originals or a partial folder
        self.base = root if self.spec is None else self.spec.originals(root)
        # Fused: the source's check leaves out decoding its last GOP (on a one-keyframe clip,
        # the whole clip: ~17% of a 640x360 clip's resize), since ffmpeg decodes every frame
        # next; the output's own check then shows whether the source decoded to its end.
        tail = self.spec is None
        self._verify = None if task.verify is None else inline_check(task.verify, tail=tail)
        self._outputs: dict[str, tuple[ClipUpdate, Path]] = {}

    def check(self, key: str, path: Path) -> MemberVerdict:
        verdict = MemberVerdict(True) if self._verify is None else self._verify(key, path)
        if self.spec is None or not verdict.good:
            return verdict
        from kinetix.process.landing import derive_landed, short_output

        task = self.task
        update, staged = derive_landed(
            self.spec, task.release, task.split, key, task.wanted[key], path, self.root
        )
        fields = update.fields
        if fields.get("state") != ClipState.PRESENT.value:
            code, message = fields.get("error_code"), fields.get("error_message")
            return MemberVerdict(False, {"verify": "bad", "error_code": code,
                                         "error_message": message})  # fmt: skip
        problem = short_output(verdict.fields, fields)
        if problem is not None:
            return MemberVerdict(False, {"verify": "bad", "error_code": ErrorCode.TRUNCATED.value,
                                         "error_message": problem})  # fmt: skip
        self._outputs[key] = (update, staged)
        return verdict

    def placed(self, key: str, clip: ExtractedClip, integrity: Integrity) -> ClipUpdate:
        """The row of a member placed at ``clip.path``; with a spec, its output placed too."""
        if self.spec is None:
            return _placed_update(self.task, key, clip, integrity)
        from kinetix.process.landing import landed_fields, place

        task, spec = self.task, self.spec
        update, staged = self._outputs.pop(key)
        out_rel = spec.output_relpath(task.wanted[key])
        place(staged, self.root / out_rel)
        if not spec.keep_originals:
            clip.path.unlink(missing_ok=True)
        fields = landed_fields(update, clip.path if spec.keep_originals else None)
        fields.update(
            path=out_rel, source=task.source, shard=task.shard_id, integrity=integrity.value
        )
        return ClipUpdate(task.release, task.split, key, fields, count_attempt=True)


def _placed_update(
    task: ShardTask, key: str, clip: ExtractedClip, integrity: Integrity
) -> ClipUpdate:
    """The row of a clip placed at ``task.wanted[key]``, with what the inline check found."""
    fields: dict[str, object] = {
        "state": ClipState.PRESENT.value, "path": task.wanted[key], "bytes": clip.size,
        "sha256": clip.sha256, "mtime": clip.path.stat().st_mtime, "source": task.source,
        "shard": task.shard_id, "integrity": integrity.value, "error_code": None,
        "error_message": None, "verify": None,
    }  # fmt: skip
    if clip.verdict is not None:
        fields.update(clip.verdict.fields)
        fields.update(bytes=clip.size, error_code=None, error_message=None)
    return ClipUpdate(task.release, task.split, key, fields, count_attempt=True)


def _etag_md5(download: ShardDownload) -> str | None:
    return md5_from_etag(download.etag)


def finish_part(task: ShardTask) -> None:
    """After the parent recorded a shard: drop its ``.part`` (or keep it as the archive)."""
    part = Path(task.part_path)
    if task.archive_path is not None and part.exists():
        dest = Path(task.archive_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)
    discard_partial(part)


def discard_partial(part: Path) -> None:
    part.unlink(missing_ok=True)
    part.with_name(part.name + ".state").unlink(missing_ok=True)


def _failed(task: ShardTask, code: ErrorCode, message: str, transferred: int) -> TaskResult:
    if task.name not in message:
        message = f"shard {task.name}: {message}"
    return TaskResult(
        shard_url=task.shard_id,
        shard_fields={
            "release": task.release,
            "split": task.split,
            "name": task.name,
            "state": "failed",
            "error_code": code.value,
            "error_message": message,
        },
        bytes_transferred=transferred,
        error=message,
        error_code=code.value,
    )


def unplaced(plan: ShardPlan, placed: Iterable[str], done: set[str]) -> list[str]:
    """Keys no candidate shard held (once every candidate was read in full), or had none."""
    have = set(placed)
    return sorted(
        key for key, candidates in plan.candidates.items() if key not in have and candidates <= done
    )
