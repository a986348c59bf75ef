"""Cookies of ``--cookies`` or ``--cookies-from-browser``: loaded once per process, never logged."""

from __future__ import annotations

import os
import re
import threading
from http.cookiejar import CookieJar
from pathlib import Path

from kinetix.config import YoutubeConfig
from kinetix.errors import ConfigError
from kinetix.sources.youtube.errors import YtdlpLog

_JARS: dict[tuple[str | None, str | None], CookieJar] = {}
_JARS_LOCK = threading.Lock()


def parse_browser_spec(spec: str) -> tuple[str, str | None, str | None, str | None]:
    """``BROWSER[+KEYRING][:PROFILE][::CONTAINER]`` as yt-dlp's ``cookiesfrombrowser`` tuple."""
    from yt_dlp.cookies import SUPPORTED_BROWSERS, SUPPORTED_KEYRINGS

    match = re.fullmatch(
        r"(?P<name>[^+:]+)(?:\s*\+\s*(?P<keyring>[^:]+))?"
        r"(?:\s*:\s*(?!:)(?P<profile>.+?))?(?:\s*::\s*(?P<container>.+))?",
        spec,
    )
    if match is None:
        raise ConfigError(
            f"--cookies-from-browser {spec!r} is not BROWSER[+KEYRING][:PROFILE][::CONTAINER]"
        )
    name, keyring, profile, container = match.group("name", "keyring", "profile", "container")
    name = name.lower()
    if name not in SUPPORTED_BROWSERS:
        raise ConfigError(
            f"--cookies-from-browser: unknown browser {name!r}; valid values are "
            f"{', '.join(sorted(SUPPORTED_BROWSERS))}"
        )
    if keyring is not None and keyring.upper() not in SUPPORTED_KEYRINGS:
        raise ConfigError(
            f"--cookies-from-browser: unknown keyring {keyring!r}; valid values are "
            f"{', '.join(sorted(SUPPORTED_KEYRINGS))}"
        )
    return name, profile, keyring.upper() if keyring else None, container


def load_cookies(config: YoutubeConfig) -> CookieJar | None:
    """The cookies of ``--cookies``/``--cookies-from-browser``, loaded once per process.

    Each try copies them into its own yt-dlp instance, which has no ``cookiefile``: yt-dlp
    writes its jar back to that file on exit, and many workers doing so would race on the
    user's file.
    """
    if config.cookies is None and config.cookies_from_browser is None:
        return None
    key = (None if config.cookies is None else str(config.cookies), config.cookies_from_browser)
    with _JARS_LOCK:
        jar = _JARS.get(key)
        if jar is not None:
            return jar
        from yt_dlp import YoutubeDL
        from yt_dlp.cookies import load_cookies as ytdlp_load_cookies

        if config.cookies is not None:
            path = Path(config.cookies).expanduser()
            # Name the flag, never the path: a path can say whose cookies these are.
            if not path.is_file():
                raise ConfigError("the --cookies file does not exist or is not a file")
            if not os.access(path, os.R_OK):
                raise ConfigError("the --cookies file is not readable")
        browser = (
            None
            if config.cookies_from_browser is None
            else parse_browser_spec(config.cookies_from_browser)
        )
        quiet = YoutubeDL({"quiet": True, "logger": YtdlpLog(lambda s: "<cookie loader>")})
        try:
            jar = ytdlp_load_cookies(
                None if config.cookies is None else str(Path(config.cookies).expanduser()),
                browser,
                quiet,
            )
        except Exception as exc:
            which = "--cookies file" if config.cookies is not None else "browser's cookies"
            cause = exc.__context__ or exc
            raise ConfigError(
                f"the {which} could not be loaded ({type(cause).__name__}); a cookies file must "
                "be in Netscape format, as browser extensions such as 'Get cookies.txt' export it"
            ) from None
        _JARS[key] = jar
        return jar
