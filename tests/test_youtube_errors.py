"""yt-dlp's real failure messages and exceptions map to stable reasons, clean one-line messages."""

from __future__ import annotations

import io
import sys

import pytest
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError, ExtractorError, GeoRestrictedError

from kinetix.errors import ErrorCode, FFmpegError, SourceError
from kinetix.sources.redaction import Redactor
from kinetix.sources.youtube_errors import classify, classify_message, clean_message

BOT_HINT = (
    "Use --cookies-from-browser or --cookies for the authentication. See  "
    "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to "
    "manually pass cookies. Also see  "
    "https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies  for tips on "
    "effectively exporting YouTube cookies"
)

# What YouTube and yt-dlp really say (yt-dlp's youtube extractor, common.py, networking, and
# user reports quoting yt-dlp's output), and the reason each must become.
REAL_MESSAGES = [
    ("Video unavailable", ErrorCode.UNAVAILABLE),
    ("Video unavailable. This content isn\u2019t available.", ErrorCode.UNAVAILABLE),
    ("This video is unavailable", ErrorCode.UNAVAILABLE),
    (
        "Requested format is not available. Use --list-formats for a list of available formats",
        ErrorCode.UNAVAILABLE,
    ),
    ("This live event will begin in 3 hours.", ErrorCode.UNAVAILABLE),
    ("Premieres in 2 hours", ErrorCode.UNAVAILABLE),
    (
        "Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: Not "
        "Found>)",
        ErrorCode.UNAVAILABLE,
    ),
    ("Private video. Sign in if you've been granted access to this video", ErrorCode.PRIVATE),
    ("Video unavailable. This video is private", ErrorCode.PRIVATE),
    ("Video unavailable. This video has been removed by the uploader", ErrorCode.REMOVED),
    (
        "Video unavailable. This video is no longer available because the YouTube account "
        "associated with this video has been terminated.",
        ErrorCode.REMOVED,
    ),
    (
        "This video has been removed for violating YouTube's policy on hate speech.",
        ErrorCode.REMOVED,
    ),
    (
        "This video has been removed for violating YouTube's Terms of Service",
        ErrorCode.REMOVED,
    ),
    (
        "Video unavailable. This video is no longer available due to a copyright claim by "
        "Sarah Ann Kennedy",
        ErrorCode.COPYRIGHT,
    ),
    (
        "This video contains content from WMG, who has blocked it on copyright grounds.",
        ErrorCode.COPYRIGHT,
    ),
    (
        "Video unavailable. This video contains content from 'ZDF', who has blocked it in your "
        "country on copyright grounds",
        ErrorCode.COPYRIGHT,
    ),
    (
        "The uploader has not made this video available in your country\nThis video is "
        "available in Germany.\nYou might want to use a VPN or a proxy server (with --proxy) "
        "to workaround.",
        ErrorCode.GEO_BLOCKED,
    ),
    (
        "This video is not available from your location due to geo restriction",
        ErrorCode.GEO_BLOCKED,
    ),
    (
        "Sign in to confirm your age. This video may be inappropriate for some users.",
        ErrorCode.AGE_RESTRICTED,
    ),
    (
        "Join this channel to get access to members-only content like this video, and other "
        "exclusive perks.",
        ErrorCode.SIGN_IN_REQUIRED,
    ),
    ("This video is only available for registered users", ErrorCode.SIGN_IN_REQUIRED),
    (f"Sign in to confirm you\u2019re not a bot. {BOT_HINT}", ErrorCode.SIGN_IN_REQUIRED),
    (
        "Sign in to confirm you're not a bot. This helps protect our community. Learn more",
        ErrorCode.SIGN_IN_REQUIRED,
    ),
    (
        "Video unavailable. YouTube is requiring a captcha challenge before playback",
        ErrorCode.SIGN_IN_REQUIRED,
    ),
    (
        "Unable to download API page: HTTP Error 429: Too Many Requests (caused by "
        "<HTTPError 429: Too Many Requests>)",
        ErrorCode.RATE_LIMITED,
    ),
    (
        "Video unavailable. This content isn't available, try again later. The current session "
        "has been rate-limited by YouTube for up to an hour.",
        ErrorCode.RATE_LIMITED,
    ),
    (
        "Unable to download webpage: <urlopen error [Errno 111] Connection refused> (caused by "
        "TransportError('<urlopen error [Errno 111] Connection refused>'))",
        ErrorCode.NETWORK,
    ),
    (
        "Unable to download webpage: The read operation timed out (caused by "
        "TransportError('The read operation timed out'))",
        ErrorCode.NETWORK,
    ),
    ("Got error: 1234 bytes read, 5678 more expected", ErrorCode.NETWORK),
    ("Unable to download webpage: HTTP Error 503: Service Unavailable", ErrorCode.NETWORK),
    ("ffmpeg exited with code 1", ErrorCode.FFMPEG_FAILED),
    ("Something nobody has seen before", ErrorCode.UNKNOWN),
]


@pytest.mark.parametrize(("message", "code"), REAL_MESSAGES)
def test_real_messages_map_to_stable_reasons(message: str, code: ErrorCode) -> None:
    assert classify_message(message)[0] is code
    # the same sentence as yt-dlp raises it, wrapped the way YoutubeDL.extract_info does
    exc = ExtractorError(message, expected=True, video_id="-dQw4w9WgXc", ie="youtube")
    wrapped = DownloadError(f"ERROR: {exc}", (type(exc), exc, None))
    assert classify(wrapped).code is code


@pytest.mark.parametrize(
    ("message", "bot"),
    [
        (f"Sign in to confirm you\u2019re not a bot. {BOT_HINT}", True),
        ("YouTube is requiring a captcha challenge before playback", True),
        ("Sign in to confirm your age. This video may be inappropriate for some users.", False),
        ("Private video. Sign in if you've been granted access to this video", False),
    ],
)
def test_bot_checks_back_off_like_rate_limits_but_keep_their_reason(
    message: str, bot: bool
) -> None:
    failure = classify(ExtractorError(message, expected=True))
    assert failure.bot_check is bot
    assert failure.retryable is bot  # bot checks are retried; age gates and private never
    assert failure.slow_down is bot
    if bot:
        assert failure.code is ErrorCode.SIGN_IN_REQUIRED


def test_permanent_and_transient_reasons() -> None:
    for message, code in REAL_MESSAGES:
        failure = classify(ExtractorError(message, expected=True))
        if code in (ErrorCode.RATE_LIMITED, ErrorCode.NETWORK, ErrorCode.UNKNOWN):
            assert failure.retryable, message
        elif not failure.bot_check:
            assert not failure.retryable, message


def _http_error(status: int, reason: str, headers: dict[str, str] | None = None) -> HTTPError:
    response = Response(
        io.BytesIO(b""), "http://127.0.0.1:1/youtube/x.mp4", headers or {}, status, reason
    )
    return HTTPError(response)


def _extract_failure(cause: Exception) -> DownloadError:
    """What YoutubeDL raises when an extractor's request failed with ``cause``."""
    exc = ExtractorError(
        f"Unable to download webpage: {cause}", cause=cause, video_id="-abc", ie="generic"
    )
    return DownloadError(f"ERROR: {exc}", (type(exc), exc, None))


def test_http_429_carries_retry_after() -> None:
    failure = classify(
        _extract_failure(_http_error(429, "Too Many Requests", {"Retry-After": "7"}))
    )
    assert failure.code is ErrorCode.RATE_LIMITED
    assert failure.retry_after == 7.0
    assert failure.slow_down and failure.throttling and failure.retryable


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, ErrorCode.UNAVAILABLE), (410, ErrorCode.UNAVAILABLE), (403, ErrorCode.NETWORK),
     (500, ErrorCode.NETWORK), (401, ErrorCode.SIGN_IN_REQUIRED)],
)  # fmt: skip
def test_http_statuses(status: int, code: ErrorCode) -> None:
    failure = classify(_extract_failure(_http_error(status, "Whatever")))
    assert failure.code is code
    assert failure.retry_after is None


def test_transport_errors_are_network() -> None:
    failure = classify(_extract_failure(TransportError("Connection reset by peer")))
    assert failure.code is ErrorCode.NETWORK
    assert failure.throttling and not failure.slow_down


def test_geo_restricted_error_type_wins() -> None:
    exc = GeoRestrictedError("The uploader has not made this video available in your country")
    assert (
        classify(DownloadError(f"ERROR: {exc}", (type(exc), exc, None))).code
        is ErrorCode.GEO_BLOCKED
    )


def test_kinetix_errors_keep_their_code() -> None:
    assert classify(SourceError("ends early", code=ErrorCode.TOO_SHORT)).code is ErrorCode.TOO_SHORT
    ff = FFmpegError(["ffmpeg", "-i", "x"], 1, "Invalid data found when processing input")
    assert classify(ff).code is ErrorCode.FFMPEG_FAILED


def test_messages_are_one_clean_line() -> None:
    raw = (
        "ERROR: [youtube] -dQw4w9WgXc: Video unavailable.\nThis video has been removed by the "
        "uploader (caused by <HTTPError 404: Not Found>); please report this issue on  "
        "https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the template"
    )
    assert clean_message(raw) == "Video unavailable. This video has been removed by the uploader"
    assert len(clean_message("x" * 5000)) == 400


def test_messages_are_redacted() -> None:
    redact = Redactor(["s3cr3t-cookie-value", "/home/me/tok3n/cookies.txt"])
    exc = ExtractorError(
        "cookies file /home/me/tok3n/cookies.txt holds s3cr3t-cookie-value", expected=True
    )
    failure = classify(exc, redact)
    assert "s3cr3t" not in failure.message and "tok3n" not in failure.message
    assert failure.message.count("<redacted>") == 2


def test_python_exception_chains_are_followed() -> None:
    try:
        try:
            raise _http_error(429, "Too Many Requests", {"Retry-After": "3"})
        except HTTPError as inner:
            raise RuntimeError("wrapper without a message of its own") from inner
    except RuntimeError:
        exc = sys.exc_info()[1]
    assert exc is not None
    failure = classify(exc)
    assert failure.code is ErrorCode.RATE_LIMITED and failure.retry_after == 3.0
