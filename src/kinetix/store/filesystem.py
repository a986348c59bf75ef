"""What kind of filesystem a dataset root lives on: local, network (shared by hosts), read-only.

The manifest's SQLite mode depends on it (see ``store/manifest.py``): WAL needs memory shared by
every process that opens the database, which only one host can have. The answer comes from
``statfs(2)``'s ``f_type`` magic number (Linux), which the filesystem itself reports, so a bind
mount or an automounter cannot disguise it. ``KINETIX_SHARED_FS=1`` (or ``0``) overrides the
detection for filesystems this table does not know.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# statfs f_type magic numbers (linux/magic.h and each filesystem's own header).
NETWORK_MAGIC: dict[int, str] = {
    0x6969: "nfs",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x19830326: "beegfs",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x517B: "smb",
    0x65735546: "fuse",  # sshfs, s3fs, gcsfuse, ...: assume shared, the safe side
    0x564C: "ncp",
    0x6B414653: "afs",
    0x5346414F: "afs",
    0x00C36400: "ceph",
    0x01161970: "gfs2",
    0x7461636F: "ocfs2",
    0x013111A8: "ibrix",
}
LOCAL_MAGIC: dict[int, str] = {
    0xEF53: "ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x01021994: "tmpfs",
    0x794C7630: "overlay",
    0x2FC12FC1: "zfs",
    0xF2F52010: "f2fs",
}


@dataclass(frozen=True)
class FilesystemInfo:
    """The filesystem holding a path: its name, shared by other hosts or not, read-only or not."""

    name: str
    network: bool
    readonly: bool


class _Statfs(ctypes.Structure):
    # struct statfs on 64-bit Linux; only f_type (the first field) is read.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 128)]


def statfs_magic(path: str | Path) -> int | None:
    """``statfs(path).f_type``, or None where the call is unavailable (not Linux)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        buf = _Statfs()
        if libc.statfs(os.fsencode(str(path)), ctypes.byref(buf)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return buf.f_type & 0xFFFFFFFF


def existing_ancestor(path: str | Path) -> Path:
    """``path`` or its nearest parent that exists (a root about to be created)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def filesystem_info(path: str | Path) -> FilesystemInfo:
    """Classify the filesystem that holds ``path`` (or would hold it once created)."""
    where = existing_ancestor(path)
    magic = statfs_magic(where)
    if magic is None:
        name, network = "unknown", False
    elif magic in NETWORK_MAGIC:
        name, network = NETWORK_MAGIC[magic], True
    else:
        name, network = LOCAL_MAGIC.get(magic, f"0x{magic:x}"), False
    override = os.environ.get("KINETIX_SHARED_FS", "").strip()
    if override in ("0", "1"):
        network = override == "1"
    return FilesystemInfo(name, network, _readonly(where))


def _readonly(path: Path) -> bool:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(path, os.W_OK)
