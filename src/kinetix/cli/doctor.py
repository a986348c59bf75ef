"""``kinetix doctor``: which ffmpeg, PyAV, yt-dlp, JS runtime and paths kinetix will use."""

from __future__ import annotations

import argparse
import importlib
import json
import os
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show the tools and versions kinetix finds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _module_version(name: str) -> str | None:
    try:
        mod = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(mod, "__version__", getattr(mod, "version", "installed")))


def _js_runtime(youtube: dict[str, Any]) -> str | None:
    deno = youtube.get("deno")
    return f"deno {deno['version']} ({deno['path']})" if deno else None


def collect() -> dict[str, Any]:
    from kinetix import __version__
    from kinetix.catalog.fetch import cache_dir
    from kinetix.process.ffmpeg import find_ffmpeg

    info: dict[str, Any] = {"kinetix": __version__}
    try:
        ff = find_ffmpeg()
        info["ffmpeg"] = {"path": ff.path, "origin": ff.origin, "version": ff.version}
    except Exception as exc:
        info["ffmpeg"] = {"error": str(exc)}
    info["pyav"] = _module_version("av")
    info["yt_dlp"] = _module_version("yt_dlp.version")
    from kinetix.sources.youtube import youtube_readiness

    youtube = youtube_readiness()
    info["yt_dlp_ejs"] = youtube.get("yt_dlp_ejs")
    info["js_runtime"] = _js_runtime(youtube)
    info["youtube_ready"] = youtube["ready"]
    info["youtube_problems"] = youtube["problems"]
    info["fast_gzip"] = (
        "isal" if _module_version("isal") else ("zlib-ng" if _module_version("zlib_ng") else None)
    )
    for opt in ("torch", "decord", "dask", "webdataset"):
        info[opt] = _module_version(opt)
    info["annotation_cache"] = str(cache_dir())
    info["cpus"] = os.cpu_count()
    return info


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        print(f"{key:18s} {value if value is not None else 'not found'}")
    for problem in info["youtube_problems"]:
        print(f"warning: YouTube downloads will fail: {problem}")
    return 0
