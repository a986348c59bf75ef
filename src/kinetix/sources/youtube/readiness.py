"""Whether real YouTube downloads can work here: yt-dlp, its solver scripts and deno."""

from __future__ import annotations

import functools
from typing import Any

from kinetix.executors.preflight import Tool


@functools.lru_cache(maxsize=1)
def _deno_path() -> str | None:
    """The deno the ``deno`` wheel installed, found even when its bin folder is not on PATH."""
    try:
        import deno

        return str(deno.find_deno_bin())
    except Exception:
        return None


DENO_TOOL = Tool("deno", _deno_path)  # what a cluster worker's preflight asks for


def youtube_readiness() -> dict[str, Any]:
    """What real YouTube downloads need, checked the way yt-dlp itself will check it.

    YouTube's player challenges need a JavaScript runtime yt-dlp supports (deno, at least
    yt-dlp's minimum version; the ``deno`` wheel's binary counts even off PATH) and the
    ``yt-dlp-ejs`` solver scripts at the version this yt-dlp expects.
    """
    report: dict[str, Any] = {"ready": False, "problems": []}
    try:
        from yt_dlp.version import __version__ as ytdlp_version
    except ImportError:
        report["problems"].append("yt-dlp is not installed: pip install 'yt-dlp[default]'")
        return report
    report["yt_dlp"] = ytdlp_version
    try:
        from yt_dlp.extractor.youtube.jsc._builtin import vendor

        expected = str(vendor.VERSION)
    except Exception:
        expected = None
    try:
        import yt_dlp_ejs

        ejs: str | None = str(yt_dlp_ejs.version)
    except ImportError:
        ejs = None
    report["yt_dlp_ejs"] = ejs
    report["yt_dlp_ejs_expected"] = expected
    if ejs is None:
        report["problems"].append("yt-dlp-ejs is missing: pip install 'yt-dlp[default]'")
    elif expected and ejs.split(".")[:2] != expected.split(".")[:2]:
        report["problems"].append(
            f"yt-dlp-ejs {ejs} does not match the {expected} this yt-dlp expects: "
            "pip install -U 'yt-dlp[default]'"
        )
    try:
        from yt_dlp.utils._jsruntime import DenoJsRuntime

        runtime = DenoJsRuntime(path=_deno_path()).info
    except Exception as exc:  # a private yt-dlp module: it may move in a later release
        report["deno"] = None
        report["problems"].append(f"cannot check the JavaScript runtime ({exc})")
        return report
    if runtime is None:
        report["deno"] = None
        report["problems"].append("no deno found: pip install deno")
    else:
        report["deno"] = {"path": runtime.path, "version": runtime.version}
        if not runtime.supported:
            minimum = ".".join(map(str, DenoJsRuntime.MIN_SUPPORTED_VERSION))
            report["problems"].append(
                f"deno {runtime.version} is older than the {minimum} yt-dlp needs: "
                "pip install -U deno"
            )
    report["ready"] = not report["problems"]
    return report
