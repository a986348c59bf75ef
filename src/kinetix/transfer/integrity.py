"""Which check a shard's bytes passed: the server's MD5 (an S3 single-part ETag), gzip CRC, none."""

from __future__ import annotations

import re
from enum import Enum

# S3 (and GCS) give a single-part object the hex MD5 of its body as its ETag; a multipart
# upload's ETag has a "-N" suffix and is no digest of the body, a weak one promises nothing.
_MD5_ETAG = re.compile(r'"?([0-9a-fA-F]{32})"?')


class Integrity(str, Enum):
    """Stored in the manifest's ``integrity`` column for every clip taken from a shard."""

    ETAG_MD5 = "etag_md5"  # the whole shard's MD5 matched the server's ETag
    GZIP_CRC = "gzip_crc"  # every gzip member's CRC32 and length matched
    NONE = "none"  # a plain tar from a server without an MD5 ETag: nothing to check against


def md5_from_etag(etag: str | None) -> str | None:
    """The body's MD5 (lower-case hex) an ETag states, or None when it is not one."""
    if not etag or etag.startswith("W/"):
        return None
    match = _MD5_ETAG.fullmatch(etag.strip())
    return match.group(1).lower() if match else None
