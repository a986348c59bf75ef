"""Getting a split's annotations onto this machine: cached download, sha256 sidecar, offline reuse.

Where a split's annotations come from:

- CVDF (``https://s3.amazonaws.com/kinetics/`` or a ``--mirror`` serving the same layout at
  its root): the path in the release table, e.g. ``400/annotations/val.csv``.
- K700 (2019) has no CVDF copy: its CSVs come from DeepMind's ``kinetics700.tar.gz``
  (``{mirror}/deepmind/kinetics700.tar.gz`` on a mirror), which is cached once and the
  split's member (``kinetics700/validate.csv`` ...) extracted from it.

A cached file lives at ``cache_dir()/{host}/{path of its URL}`` next to ``<name>.meta.json``
holding its url, sha256, size and etag. Later calls use it without touching the network as long
as it still matches its sidecar. ``load_catalog`` fetches (or takes a local file) and reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from kinetix.catalog.catalog import Catalog, file_stats
from kinetix.catalog.downstream import get_downstream
from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.releases import (
    CVDF_BASE,
    DEEPMIND_BASE,
    Release,
    check_split,
    get_release,
    join_url,
    normalise_split,
)
from kinetix.catalog.stats import AnnotationStats
from kinetix.config import TransferConfig
from kinetix.durable import require_writable, sha256_file, write_text_atomic
from kinetix.errors import AnnotationError, ArchiveError, ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")

SIDECAR_SUFFIX = ".meta.json"
MIRROR_DEEPMIND_DIR = "deepmind/"  # where a mirror keeps DeepMind's archives


def cache_dir() -> Path:
    """Where fetched annotation files are kept: ``$KINETIX_CACHE``, else ``~/.cache/kinetix``."""
    env = os.environ.get("KINETIX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kinetix"


@dataclass(frozen=True)
class AnnotationLocation:
    """Where one split's annotations are published."""

    url: str  # the annotation file, or the archive holding it
    archive_split: str | None = None  # set when the file is a member of the archive at ``url``


@dataclass(frozen=True)
class CachedFile:
    """The sidecar of a cached file: what it is, where it came from, and its hash."""

    url: str
    sha256: str
    size: int
    etag: str | None
    fetched_at: float
    member: str | None = None  # archive member name, when extracted from the archive at ``url``


def locate_annotations(
    release: str | Release, split: str, *, mirror: str | None = None
) -> AnnotationLocation:
    """The URL a split's annotations are fetched from (official, or under ``mirror``)."""
    rel = release if isinstance(release, Release) else get_release(release)
    split = check_split(rel, split)
    if rel.cvdf_annotations:
        return AnnotationLocation(join_url(mirror or CVDF_BASE, rel.annotation_path(split)))
    base = join_url(mirror, MIRROR_DEEPMIND_DIR) if mirror else DEEPMIND_BASE
    return AnnotationLocation(join_url(base, rel.deepmind_archive), archive_split=split)


def cache_path(url: str) -> Path:
    """``cache_dir()/{host}/{path}`` for a URL; ``:`` in the host becomes ``_``."""
    parts = urlsplit(url)
    path = PurePosixPath(unquote(parts.path))
    if not parts.netloc or ".." in path.parts or not path.name:
        raise ConfigError(f"cannot cache {url!r}: expected http(s)://host/path/to/file")
    return cache_dir() / parts.netloc.replace(":", "_") / path.relative_to("/")


def read_sidecar(path: Path) -> CachedFile | None:
    """The sidecar of a cached file, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads(Path(str(path) + SIDECAR_SUFFIX).read_text(encoding="utf-8"))
        return CachedFile(**data)
    except (OSError, ValueError, TypeError):
        return None


def fetch_annotations(
    release: str,
    split: str,
    *,
    mirror: str | None = None,
    offline: bool = False,
    config: TransferConfig | None = None,
) -> Path:
    """The local path of a split's annotation file, downloading it unless a good copy is cached.

    ``offline=True`` never touches the network and fails with the command to run when
    nothing usable is cached.
    """
    rel = get_release(release)
    split = check_split(rel, split)
    location = locate_annotations(rel, split, mirror=mirror)
    config = config or TransferConfig()
    if location.archive_split is None:
        dest = cache_path(location.url)
        if _is_intact(dest):
            logger.debug("using cached %s", dest)
            return dest
        _require_online(offline, rel, split, mirror, dest)
        _require_cache(dest.parent)
        _download(location.url, dest, config)
        return dest
    archive = cache_path(location.url)
    # Members are cached under the archive's name without .tar.gz, e.g. kinetics700/validate.csv
    folder = archive.with_name(archive.name.split(".", 1)[0])
    for cached in sorted(folder.glob("*.csv")) if folder.is_dir() else ():
        if _split_of_member(cached.name) == split and _is_intact(cached):
            logger.debug("using cached %s", cached)
            return cached
    _require_online(offline, rel, split, mirror, folder)
    _require_cache(folder)
    if not _is_intact(archive):
        _download(location.url, archive, config)
    return _extract_member(archive, split, folder)


def _require_online(
    offline: bool, rel: Release, split: str, mirror: str | None, where: Path
) -> None:
    if not offline:
        return
    fetch = f"kinetix annotations fetch {rel.name} --split {split}"
    if mirror:
        fetch += f" --mirror {mirror}"
    raise ConfigError(
        f"--offline: no cached annotations for {rel.name} {split} in {where}; "
        f"run '{fetch}' while online, or pass an annotation file"
    )


def _require_cache(folder: Path) -> None:
    """Fail before the download, in one line, when the cache cannot be written."""
    require_writable(
        folder,
        f"the annotation cache {folder}",
        "set KINETIX_CACHE to a writable folder, or pass an annotation file (--annotations FILE)",
    )


def _is_intact(path: Path) -> bool:
    """The file exists and still matches its sidecar (size, then sha256)."""
    record = read_sidecar(path)
    if record is None or not path.is_file():
        return False
    if path.stat().st_size != record.size or sha256_file(path) != record.sha256:
        logger.warning("%s no longer matches its sidecar; fetching it again", path)
        return False
    return True


def _download(url: str, dest: Path, config: TransferConfig) -> CachedFile:
    from kinetix.transfer.http import fetch_file  # the transfer stack is only needed online

    logger.info("fetching %s", url)
    result = fetch_file(url, dest, config)
    record = CachedFile(url, result.sha256, result.size, result.etag, time.time())
    _write_sidecar(dest, record)
    return record


def _write_sidecar(path: Path, record: CachedFile) -> None:
    write_text_atomic(Path(str(path) + SIDECAR_SUFFIX), json.dumps(asdict(record), indent=2) + "\n")


def _split_of_member(name: str) -> str | None:
    """The split a DeepMind archive member is for: ``kinetics700/validate.csv`` -> ``val``."""
    stem, dot, ext = PurePosixPath(name).name.rpartition(".")
    if not dot or ext.lower() != "csv":
        return None
    try:
        return normalise_split(stem)
    except ConfigError:
        return None


def _extract_member(archive: Path, split: str, folder: Path) -> Path:
    """Copy the split's CSV out of a cached DeepMind archive; returns the extracted file."""
    return _extract_matching(
        archive,
        folder,
        lambda name: _split_of_member(name) == split,
        f"one CSV for split {split!r}",
    )


def _extract_matching(
    archive: Path, folder: Path, wanted: Callable[[str], bool], what: str
) -> Path:
    """Copy the one member ``wanted`` picks out of a cached archive, with its own sidecar."""
    record = read_sidecar(archive)
    assert record is not None  # _download or _is_intact just checked it
    try:
        with tarfile.open(archive, "r:*") as tar:
            names = [m for m in tar.getmembers() if m.isfile()]
            found = [m for m in names if wanted(m.name)]
            if len(found) != 1:
                raise ArchiveError(
                    f"{archive}: expected {what}, found "
                    f"{[m.name for m in found] or 'none'} among {[m.name for m in names][:10]}"
                )
            member = found[0]
            # The destination name is the member's base name, never its path: nothing in the
            # archive can write outside ``folder``.
            dest = folder / PurePosixPath(member.name).name
            folder.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has a body
            temp = dest.with_name(dest.name + ".part")
            digest = hashlib.sha256()
            with source, temp.open("wb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            os.replace(temp, dest)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArchiveError(
            f"{archive} is not a readable tar archive ({exc}); delete it and fetch again"
        ) from exc
    _write_sidecar(
        dest,
        CachedFile(
            record.url,
            digest.hexdigest(),
            dest.stat().st_size,
            record.etag,
            time.time(),
            member.name,
        ),
    )
    logger.info("extracted %s from %s", member.name, archive)
    return dest


def load_catalog(
    release: str,
    split: str,
    *,
    mirror: str | None = None,
    offline: bool = False,
    annotations: Path | str | None = None,
    config: TransferConfig | None = None,
) -> Catalog:
    """The clips and label registry of a split, fetched (or reused from the cache) and read.

    ``annotations`` points at a local file of any supported format instead of fetching.
    """
    rel = get_release(release)
    split = check_split(rel, split)
    if annotations is not None:
        path = Path(annotations)
        return read_catalog(rel.name, split, path)
    path = fetch_annotations(rel.name, split, mirror=mirror, offline=offline, config=config)
    return read_fetched_catalog(rel.name, split, path)


def load_stats(
    release: str,
    split: str,
    *,
    mirror: str | None = None,
    offline: bool = False,
    annotations: Path | str | None = None,
) -> tuple[Path, AnnotationStats]:
    """The annotation file of a split and its ``AnnotationStats``, read as a stream.

    Where ``load_catalog(...).stats()`` holds every row, this holds none (``file_stats``), so
    it checks a file of any length; the errors are the same.
    """
    rel = get_release(release)
    split = check_split(rel, split)
    if annotations is not None:
        path = Path(annotations)
        return path, file_stats(rel.name, split, path)
    path = fetch_annotations(rel.name, split, mirror=mirror, offline=offline)
    return path, _drop_if_unreadable(path, lambda: file_stats(rel.name, split, path))


def read_fetched_catalog(release: str, split: str, path: Path) -> Catalog:
    """``read_catalog`` of a file ``fetch_annotations`` cached; one that fails to read is removed.

    What the mirror sent may not be an annotation file (junk, a page): keeping it would make
    every later run read the same thing from the cache.
    """
    return _drop_if_unreadable(path, lambda: read_catalog(release, split, path))


def _drop_if_unreadable(path: Path, read: Callable[[], T]) -> T:
    """``read()``; when it fails on the cached file at ``path``, that file is removed first."""
    try:
        return read()
    except AnnotationError as exc:
        path.unlink(missing_ok=True)
        path.with_name(path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
        raise AnnotationError(
            f"{exc}; the cached copy was removed: rerun to fetch it again, or check --mirror"
        ) from None


def read_catalog(release: str, split: str, path: Path | str) -> Catalog:
    """The catalog of one split read from a local annotation file of any supported format."""
    path = Path(path)
    clips = read_annotations(path, release=release, split=split)
    return Catalog(release, split, clips, LabelRegistry.for_release(release), path)


def fetch_downstream(
    release: str,
    split: str,
    *,
    mirror: str | None = None,
    offline: bool = False,
    config: TransferConfig | None = None,
) -> Path:
    """The local path of one split's CSV of AVA-Kinetics or Countix.

    The release's tarball (``700_2020/annotations/countix.tar.gz`` ...) is fetched from CVDF
    or ``mirror`` into the cache once, with its sha256 sidecar; the split's member is
    extracted beside it (``.../countix/countix_val.csv``) with a sidecar of its own.
    """
    rel = get_downstream(release)
    member = rel.member(split)
    url = join_url(mirror or CVDF_BASE, rel.archive)
    archive = cache_path(url)
    folder = archive.with_name(archive.name.split(".", 1)[0])
    dest = folder / member
    if _is_intact(dest):
        logger.debug("using cached %s", dest)
        return dest
    if offline:
        fetch = f"kinetix annotations fetch {rel.name} --split {split}"
        if mirror:
            fetch += f" --mirror {mirror}"
        raise ConfigError(
            f"--offline: no cached annotations for {rel.name} {split} in {folder}; "
            f"run '{fetch}' while online, or pass an annotation file"
        )
    if not _is_intact(archive):
        _download(url, archive, config or TransferConfig())
    return _extract_matching(
        archive,
        folder,
        lambda name: PurePosixPath(name).name == member,
        f"one member named {member!r}",
    )
