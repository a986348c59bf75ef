"""Byte sizes as people write them (``4M``, ``1GB``, ``500MiB``): one parser for every size flag.

The convention is GNU coreutils' (``dd``, ``sort -S``, ``truncate``): ``KB``, ``MB``, ``GB``,
``TB`` are powers of 1000; ``KiB``, ``MiB``, ``GiB``, ``TiB`` and the bare ``K``, ``M``, ``G``,
``T`` are powers of 1024; ``B`` or no unit is bytes. Units are case-insensitive.
"""

from __future__ import annotations

import re

from kinetix.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgt", start=1):
    _UNITS[_letter] = _UNITS[_letter + "ib"] = 1024**_power
    _UNITS[_letter + "b"] = 1000**_power

EXAMPLES = "e.g. 4M, 64KiB, 1GB (= 10^9 bytes), 1GiB (= 2^30 bytes)"


def parse_size(text: str | int, flag: str = "size") -> int:
    """``4M`` -> 4194304, ``1GB`` -> 10**9, ``1GiB`` -> 2**30, ``512`` -> 512 (bytes).

    Raises ``ConfigError`` naming ``flag`` for anything else.
    """
    if isinstance(text, int):
        return text
    size = size_or_none(text)
    if size is None:
        raise ConfigError(f"invalid {flag} {text!r}: not a size; {EXAMPLES}")
    return size


def size_or_none(text: str) -> int | None:
    """The bytes ``text`` names, or None when it is not a size."""
    match = _SIZE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def has_unit(text: str) -> bool:
    """Whether ``text`` carries a unit (``1GB``) rather than being a bare count (``1000``)."""
    match = _SIZE.match(text)
    return bool(match and match.group(2))


def format_size(n: int) -> str:
    """The shortest exact spelling the parser reads back: ``4M``, ``64K``, ``1GB``, ``1500``."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)
