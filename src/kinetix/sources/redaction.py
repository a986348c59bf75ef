"""Keep secrets (cookie values, the cookies path, proxy passwords) out of logs and messages."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import unquote, urlsplit

REDACTED = "<redacted>"
# Shorter values (a "1", a "yes") appear in ordinary text; replacing them would mangle messages
# without protecting anything worth protecting.
_MIN_SECRET = 4


class Redactor:
    """Replaces every known secret in a text with ``<redacted>``."""

    def __init__(self, secrets: Iterable[str] = ()):
        unique = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(unique, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def __bool__(self) -> bool:
        return self._pattern is not None


def path_secrets(path: str | os.PathLike[str] | None) -> list[str]:
    """The spellings of a path that may show up in a message: as given, absolute, resolved."""
    if path is None:
        return []
    p = Path(path)
    spellings = {str(p), os.fspath(p.expanduser())}
    try:
        spellings.add(str(p.expanduser().resolve()))
    except OSError:
        pass
    return sorted(spellings)


def proxy_secrets(proxy: str | None) -> list[str]:
    """The credentials in a proxy URL (``scheme://user:password@host``), raw and decoded."""
    if not proxy or "@" not in proxy:
        return []
    userinfo = urlsplit(proxy if "://" in proxy else f"http://{proxy}").netloc.rpartition("@")[0]
    found = {userinfo, unquote(userinfo)}
    user, _, password = userinfo.partition(":")
    found.update({password, unquote(password)})
    if password:  # a bare user name is not secret, but "user:password" and the password are
        found.discard(user)
    return sorted(s for s in found if s)


def cookie_secrets(jar: CookieJar | None) -> list[str]:
    """Every cookie value in a jar."""
    if jar is None:
        return []
    return [c.value for c in jar if c.value]
