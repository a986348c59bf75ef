"""The kinetix exception tree, and the stable error codes workers record in the manifest.

    KinetixError
    ├── ConfigError (ValueError)        bad flag, unknown release/split, typo'd class
    ├── AnnotationError (ValueError)    malformed annotation file / row
    ├── ManifestError                   manifest missing, locked or of a newer schema
    │   ├── ManifestDamagedError        cut short, junk, wrong tables: 'kinetix repair' rebuilds
    │   └── LockedError                 another kinetix process holds the root
    ├── TransferError (OSError)         an HTTP transfer failed
    │   ├── ConnectError                no connection at all: DNS, refused, unreachable
    │   ├── StallError                  a connection went silent or slower than the minimum rate
    │   ├── HTTPStatusError             the server answered 4xx/5xx
    │   └── IntegrityError              size / ETag / checksum mismatch, truncated body
    ├── ArchiveError                    corrupt gzip/tar, unsafe member
    ├── DiskSpaceError (OSError)        not enough free space for the planned work
    ├── FFmpegError                     ffmpeg/ffprobe exited non-zero (carries stderr tail)
    ├── MediaError                      a clip file is not a usable video (carries a ``code``)
    ├── DecodeError                     a loader could not decode a clip or its frames
    ├── SourceError                     a clip source failed (carries a stable ``code``)
    ├── WorkerLostError                 worker processes kept dying under one task (OOM, kill)
    └── MissingDependencyError (ImportError)  an optional extra is not installed

Every error a worker catches becomes a result with one of the codes in ``ErrorCode``;
the CLI prints ``str(exc)`` as one line and exits non-zero.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable reasons stored in the manifest's ``error_code`` column."""

    # transfer / archive
    HTTP_404 = "http_404"
    HTTP_ERROR = "http_error"
    NOT_AN_ARCHIVE = "not_an_archive"
    CORRUPT_ARCHIVE = "corrupt_archive"
    TRUNCATED = "truncated"
    NETWORK = "network"
    NO_SPACE = "no_space"
    NOT_IN_SHARD = "not_in_shard"
    # a shard's copy of a clip refused (the clip may still come from the K400 replacement set);
    # a copy that is not a whole MP4 gets verify's codes (truncated, empty_file, unreadable)
    UNSAFE_MEMBER = "unsafe_member"  # absolute path, '..', link, device
    OVERSIZED_MEMBER = "oversized_member"  # declares more than the per-clip maximum
    DUPLICATE_MEMBER = "duplicate_member"  # the shard holds the clip twice
    UNSAFE_ARCHIVE = "unsafe_archive"  # inflates far beyond its size (a decompression bomb)
    # youtube
    UNAVAILABLE = "unavailable"
    PRIVATE = "private"
    REMOVED = "removed"
    COPYRIGHT = "copyright"
    GEO_BLOCKED = "geo_blocked"
    AGE_RESTRICTED = "age_restricted"
    SIGN_IN_REQUIRED = "sign_in_required"
    RATE_LIMITED = "rate_limited"
    TOO_SHORT = "too_short"
    NOT_VIDEO = "not_video"  # the server answered 200 with an HTML page or junk, not a video
    # processing / verification
    FFMPEG_FAILED = "ffmpeg_failed"
    UNREADABLE = "unreadable"
    ZERO_FRAMES = "zero_frames"
    BAD_DURATION = "bad_duration"
    EMPTY_FILE = "empty_file"
    MISSING_FRAMES = "missing_frames"
    UNKNOWN = "unknown"

    @property
    def transient(self) -> bool:
        """Transient failures are retried; permanent ones (video removed) are not."""
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {
        ErrorCode.HTTP_ERROR,
        ErrorCode.TRUNCATED,
        ErrorCode.NETWORK,
        ErrorCode.RATE_LIMITED,
        ErrorCode.CORRUPT_ARCHIVE,
        ErrorCode.NO_SPACE,
        ErrorCode.UNKNOWN,
    }
)


class KinetixError(Exception):
    """Base of every error kinetix raises on purpose."""


class ConfigError(KinetixError, ValueError):
    """A setting, flag, release, split or class name is not valid."""


class AnnotationError(KinetixError, ValueError):
    """An annotation file or one of its rows does not have the expected shape."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ManifestError(KinetixError):
    """The manifest database cannot be used."""


class ManifestDamagedError(ManifestError):
    """The manifest file is damaged (or gone while the clips are there); it can be rebuilt."""


class LockedError(ManifestError):
    """Another kinetix process is already working on this root."""


class TransferError(KinetixError, OSError):
    """An HTTP transfer failed."""

    code: ErrorCode = ErrorCode.NETWORK

    def __init__(self, message: str, *, url: str | None = None, code: ErrorCode | None = None):
        super().__init__(message)
        self.url = url
        if code is not None:
            self.code = code


class ConnectError(TransferError):
    """The host could not be reached at all (name not resolved, connection refused, no route).

    Retried only briefly: a machine without network or a wrong ``--mirror`` does not heal in
    a minute, and the user should hear so at once.
    """


class StallError(TransferError):
    """A connection delivered nothing, or less than the minimum rate, for ``timeout`` seconds."""


class HTTPStatusError(TransferError):
    """The server answered with an error status."""

    def __init__(self, status: int, url: str, *, retry_after: float | None = None):
        code = ErrorCode.HTTP_404 if status == 404 else ErrorCode.HTTP_ERROR
        super().__init__(f"HTTP {status} for {url}", url=url, code=code)
        self.status = status
        self.retry_after = retry_after


class IntegrityError(TransferError):
    """What arrived is not what the server promised (size, ETag, truncated body)."""

    code = ErrorCode.TRUNCATED


class ArchiveError(KinetixError):
    """A shard is not a valid gzip/tar, or holds an unsafe member."""

    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.CORRUPT_ARCHIVE):
        super().__init__(message)
        self.code = code


class DiskSpaceError(KinetixError, OSError):
    """The planned work does not fit on the target disk."""

    code = ErrorCode.NO_SPACE


class FFmpegError(KinetixError):
    """ffmpeg or ffprobe exited non-zero."""

    code = ErrorCode.FFMPEG_FAILED

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str):
        cmd = " ".join([*argv[:1], "…", *argv[-1:]]) if len(argv) > 2 else " ".join(argv)
        super().__init__(f"{cmd} exited with {returncode}: {stderr_tail.strip()[-500:]}")
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class DecodeError(KinetixError):
    """A loader could not decode a clip (or read its frame images)."""

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path


class MediaError(KinetixError):
    """A clip file cannot be used as a video; ``code`` says why (unreadable, truncated ...)."""

    def __init__(self, path: str, reason: str, *, code: ErrorCode):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason  # without the path, for the manifest row that names the clip
        self.code = code


class SourceError(KinetixError):
    """A clip source could not deliver a clip; ``code`` says why."""

    def __init__(self, message: str, *, code: ErrorCode):
        super().__init__(message)
        self.code = code


class WorkerLostError(KinetixError):
    """Worker processes died running the same task again and again (out of memory, killed).

    One dead worker is survived: its tasks run again elsewhere. A task that took down several
    is what kills them, so the run stops; what finished is recorded and a rerun resumes.
    """


class MissingDependencyError(KinetixError, ImportError):
    """An optional part is used without its extra installed."""

    def __init__(self, module: str, extra: str | None = None, *, requirement: str | None = None):
        if extra is not None:
            fix = f"it comes with the [{extra}] extra: pip install 'kinetix[{extra}]'"
        else:  # optional tools kinetix has no extra for (decord, torchcodec)
            fix = f"pip install {requirement or module}"
        super().__init__(f"{module} is not installed; {fix}")
