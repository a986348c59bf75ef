"""Whether a clip's bytes form a whole MP4: its top-level boxes, followed as the bytes stream by.

A shard member cut short (K400's corrupted clips), empty, or whose index (``moov``) is gone is
not a video whatever its tar header says. Walking the top-level ISO-BMFF boxes needs no decoder
and no extra read: the extractor feeds the member's bytes as it writes them. Bytes that do not
start like an MP4 at all are not judged (another container, or not a video).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from kinetix.errors import ErrorCode

# Box types an MP4/QuickTime file starts with; anything else is not judged as an MP4.
_FIRST_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin"})


class Problem(NamedTuple):
    """Why bytes are not a whole MP4, with the code ``verify`` gives the same defect."""

    code: ErrorCode
    reason: str


class Mp4Structure:
    """Follows the top-level boxes of one file: ``feed`` its bytes in order, then ``problem``."""

    def __init__(self) -> None:
        self._size = 0  # bytes fed so far
        self._next = 0  # offset of the next top-level box header
        self._header = bytearray()
        self._last = (b"", 0, 0)  # (type, offset, declared size) of the last box started
        self._to_end = False  # a box of size 0 runs to the end of the file
        self._error: str | None = None
        self.is_mp4: bool | None = None  # None until the first header is read
        self.boxes: set[bytes] = set()

    def feed(self, data: bytes | memoryview) -> None:
        start = self._size
        self._size += len(data)
        while self._error is None and not self._to_end and self.is_mp4 is not False:
            want = self._next + len(self._header)  # offset of the next header byte needed
            if want >= self._size:
                return
            need = 16 if len(self._header) >= 8 and self._header[:4] == b"\0\0\0\1" else 8
            take = min(need - len(self._header), self._size - want)
            rel = want - start
            self._header += data[rel : rel + take]
            if len(self._header) == 8 and self._header[:4] == b"\0\0\0\1":
                continue  # a 64-bit size follows
            if len(self._header) < need:
                return
            self._on_box(bytes(self._header))
            self._header.clear()

    def _on_box(self, header: bytes) -> None:
        size, kind = struct.unpack(">I4s", header[:8])
        if self.is_mp4 is None:
            self.is_mp4 = kind in _FIRST_BOXES
            if not self.is_mp4:
                return
        if not all(0x20 <= c <= 0x7E for c in kind):
            self._error = f"unreadable data where a box should start (offset {self._next})"
            return
        if size == 1:
            size = struct.unpack(">Q", header[8:16])[0]
            if size < 16:
                self._error = f"box {kind.decode()!r} at offset {self._next} has size {size}"
                return
        elif size == 0:
            self._to_end = True
        elif size < 8:
            self._error = f"box {kind.decode()!r} at offset {self._next} has size {size}"
            return
        self.boxes.add(kind)
        self._last = (kind, self._next, size)
        self._next += size

    def problem(self) -> Problem | None:
        """Why the bytes fed are not a whole MP4, or None (a whole MP4, or not judged)."""
        if self._size == 0:
            return Problem(ErrorCode.EMPTY_FILE, "it is empty (0 bytes)")
        if self.is_mp4 is None:
            return Problem(
                ErrorCode.TRUNCATED, f"it is only {self._size} bytes, too short to be a video"
            )
        if not self.is_mp4:
            return None
        if self._error is not None:
            return Problem(ErrorCode.UNREADABLE, self._error)
        kind, offset, size = self._last
        if not self._to_end and self._next > self._size:
            return Problem(
                ErrorCode.TRUNCATED,
                f"box {kind.decode()!r} at offset {offset} needs {size} bytes but the file ends "
                f"after {self._size - offset} (truncated)",
            )
        if self._header:
            return Problem(
                ErrorCode.TRUNCATED,
                f"it ends inside a box header at offset {self._next} (truncated)",
            )
        if b"moov" not in self.boxes:
            return Problem(
                ErrorCode.UNREADABLE, "it has no 'moov' box, the index every player needs"
            )
        return None
