"""What a yt-dlp or ffmpeg failure means for a clip: a stable reason, a short message, a wait;
and ``YtdlpLog``, how yt-dlp's own messages reach our log (redacted, each warning once).

yt-dlp reports YouTube's own sentences ("Video unavailable. This video has been removed by the
uploader") inside ``DownloadError``/``ExtractorError``; an HTTP failure carries the
``HTTPError`` (status, ``Retry-After``) as its cause. ``classify`` looks at the HTTP status
first and at the words second, using ``MESSAGE_RULES`` in order: the first rule that matches
wins, so the specific reasons come before the catch-all "Video unavailable".
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kinetix.errors import ErrorCode, FFmpegError, SourceError
from kinetix.transfer.retry import parse_retry_after

log = logging.getLogger(__name__)

# (pattern on the lower-cased message with curly quotes straightened, code, bot check)
MESSAGE_RULES: tuple[tuple[str, ErrorCode, bool], ...] = (
    # Bot checks first: they say "sign in" too, but they are about us, not the video.
    (r"confirm you.?re not a bot", ErrorCode.SIGN_IN_REQUIRED, True),
    (r"captcha", ErrorCode.SIGN_IN_REQUIRED, True),
    (r"http error 429|too many requests", ErrorCode.RATE_LIMITED, False),
    (r"try again later|rate-limited by youtube|rate limit", ErrorCode.RATE_LIMITED, False),
    # "blocked it in your country on copyright grounds" is a copyright block, not geo.
    (r"copyright", ErrorCode.COPYRIGHT, False),
    (r"private video|video is private", ErrorCode.PRIVATE, False),
    (
        r"not available in your country|not made this video available in your country"
        r"|from your location|geo.?restrict",
        ErrorCode.GEO_BLOCKED,
        False,
    ),
    (
        r"confirm your age|age.?restricted|inappropriate for some users|age verification",
        ErrorCode.AGE_RESTRICTED,
        False,
    ),
    (
        r"removed by the uploader|has been removed|account .*has been terminated"
        r"|account has been terminated|closed their youtube account"
        r"|violat\w* youtube.s (terms|policy|community guidelines)",
        ErrorCode.REMOVED,
        False,
    ),
    (
        r"members.only|join this channel|sign in|log in|login|registered users"
        r"|requires payment|http error 401",
        ErrorCode.SIGN_IN_REQUIRED,
        False,
    ),
    (
        r"http error 404|http error 410|video unavailable|video is unavailable"
        r"|video is not available|no longer available|content isn.t available"
        r"|requested format is not available|no video formats found|unsupported url"
        r"|is not a valid url|incomplete youtube id|premieres in|live event will begin",
        ErrorCode.UNAVAILABLE,
        False,
    ),
    (
        r"http error (403|408|5\d\d)|timed out|connection (reset|refused|aborted)"
        r"|remote end closed|incomplete ?read|bytes read|name resolution|name or service"
        r"|network is unreachable|no route to host|ssl|eof occurred|broken pipe"
        r"|unable to download|unable to connect|proxy",
        ErrorCode.NETWORK,
        False,
    ),
    (r"ffmpeg|postprocessing|conversion failed", ErrorCode.FFMPEG_FAILED, False),
)
_RULES = tuple((re.compile(p), code, bot) for p, code, bot in MESSAGE_RULES)

_STATUS_CODES = {
    401: ErrorCode.SIGN_IN_REQUIRED,
    404: ErrorCode.UNAVAILABLE,
    410: ErrorCode.UNAVAILABLE,
    429: ErrorCode.RATE_LIMITED,
}

# yt-dlp decorates messages: "ERROR: [youtube] -abc123: Video unavailable (caused by <...>)".
_PREFIX = re.compile(r"^(?:ERROR:\s*)?(?:\[[\w:.-]+\]\s*(?:[\w-]+:\s+)?)?")
_CAUSED_BY = re.compile(r"\s*\(caused by .*$", re.S)  # a repr of the cause; the text says it
_BUG_REPORT = re.compile(r";\s*please report this issue on .*$", re.S)
MAX_MESSAGE = 400


@dataclass(frozen=True)
class Failure:
    """Why one try at a clip failed, and how to go on."""

    code: ErrorCode
    message: str  # one line, secrets removed
    retry_after: float | None = None  # what the server asked for, in seconds
    bot_check: bool = False  # "Sign in to confirm you're not a bot": back off like a 429

    @property
    def retryable(self) -> bool:
        """Worth another try in this task: transient reasons and bot checks."""
        return self.code.transient or self.bot_check

    @property
    def slow_down(self) -> bool:
        """The service is refusing us (not the video): wait long, and tell the breaker."""
        return self.code is ErrorCode.RATE_LIMITED or self.bot_check

    @property
    def throttling(self) -> bool:
        """Counts towards the circuit breaker's error rate."""
        return self.slow_down or self.code is ErrorCode.NETWORK


def classify_message(text: str) -> tuple[ErrorCode, bool]:
    """The reason for a yt-dlp/YouTube message, and whether it is a bot check."""
    folded = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    for pattern, code, bot in _RULES:
        if pattern.search(folded):
            return code, bot
    return ErrorCode.UNKNOWN, False


def clean_message(text: str, redact: Callable[[str], str] = str) -> str:
    """One line for the manifest: no "ERROR: [youtube] id:" prefix, no traceback, no secrets."""
    text = _PREFIX.sub("", text.strip())
    text = _CAUSED_BY.sub("", text)
    text = _BUG_REPORT.sub("", text)
    text = " ".join(text.split())
    text = redact(text)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (yt-dlp's exc_info and cause, Python's chain)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            todo.append(exc_info[1])
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return seen


def _http_status(exc: BaseException) -> tuple[int | None, float | None]:
    status = getattr(exc, "status", None)
    response = getattr(exc, "response", None)
    if not isinstance(status, int) or response is None:
        return None, None
    headers = getattr(response, "headers", None)
    retry_after = None
    if headers is not None:
        try:
            retry_after = parse_retry_after(headers.get("Retry-After"))
        except Exception:  # odd header objects must not hide the real failure
            retry_after = None
    return status, retry_after


def classify(exc: BaseException, redact: Callable[[str], str] = str) -> Failure:
    """The ``Failure`` for an exception raised while fetching or trimming a clip."""
    if isinstance(exc, SourceError):
        return Failure(exc.code, clean_message(str(exc), redact))
    if isinstance(exc, FFmpegError):
        return Failure(ErrorCode.FFMPEG_FAILED, clean_message(str(exc), redact))
    chain = _causes(exc)
    message = clean_message(str(exc), redact)
    for e in chain:
        if type(e).__name__ == "GeoRestrictedError":
            return Failure(ErrorCode.GEO_BLOCKED, message)
    code, bot = classify_message(message)
    for e in chain:
        status, retry_after = _http_status(e)
        if status is None:
            continue
        if code in (ErrorCode.UNKNOWN, ErrorCode.NETWORK, ErrorCode.UNAVAILABLE) or status == 429:
            code = _STATUS_CODES.get(status, ErrorCode.NETWORK)
        return Failure(code, message, retry_after=retry_after, bot_check=bot)
    return Failure(code, message, bot_check=bot)


class YtdlpLog:
    """yt-dlp's ``logger``: everything to our DEBUG log, warnings once, always redacted."""

    _seen: ClassVar[set[str]] = set()  # per process: one warning per distinct message
    _seen_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, redact: Callable[[str], str]):
        self.redact = redact

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", self.redact(message))

    info = debug

    def warning(self, message: str) -> None:
        text = clean_message(message, self.redact)
        with self._seen_lock:
            if text in self._seen:
                return
            self._seen.add(text)
        log.warning("yt-dlp: %s", text)

    def error(self, message: str) -> None:
        # Errors come back as exceptions and are recorded per clip; here they would be noise.
        log.debug("yt-dlp error: %s", self.redact(message))
