"""Checks every cluster worker passes before it gets a task: same root, writable, same tools.

The parent writes a token file with a random value under the output root; each worker reads
it back at the same path (so it sees the same filesystem there, not a look-alike folder on its
own disk), writes a file next to it, and reports the versions of the tools the stage needs.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinetix.errors import ConfigError

TOOLS = ("ffmpeg", "av", "yt_dlp", "deno")


@dataclass(frozen=True)
class Preflight:
    """What each worker must have: ``writable`` (a folder of the root), ``visible`` files, tools."""

    writable: Path
    visible: tuple[Path, ...] = ()
    tools: tuple[str, ...] = ()
    _token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tools) - set(TOOLS))
        if unknown:
            raise ConfigError(f"unknown preflight tools {unknown}; valid values are {TOOLS}")

    @property
    def token_path(self) -> Path:
        return self.writable / f".preflight-{self._token}"

    def write_token(self) -> None:
        self.writable.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(self._token)

    def remove_token(self) -> None:
        self.token_path.unlink(missing_ok=True)

    def expected(self) -> dict[str, str | None]:
        """The parent's own tool versions: workers must match them."""
        return tool_versions(self.tools)

    def check(self, results: dict[str, tuple[str, list[str]]]) -> None:
        """Raise one line for the first worker (by address) that failed, naming host and problem."""
        bad = {addr: r for addr, r in results.items() if r[1]}
        if not bad:
            return
        addr = sorted(bad)[0]
        host, problems = bad[addr]
        more = f" ({len(bad) - 1} more worker(s) failed too)" if len(bad) > 1 else ""
        raise ConfigError(f"worker {addr} on {host}: {'; '.join(problems)}{more}")


def tool_versions(tools: tuple[str, ...]) -> dict[str, str | None]:
    """Version of each tool here, None when it is missing."""
    found: dict[str, str | None] = {}
    for tool in tools:
        try:
            found[tool] = _version(tool)
        except Exception:
            found[tool] = None
    return found


def _version(tool: str) -> str | None:
    if tool == "ffmpeg":
        from kinetix.process.ffmpeg import find_ffmpeg

        return find_ffmpeg().version
    if tool == "av":
        import av

        return str(av.__version__)
    if tool == "yt_dlp":
        from yt_dlp.version import __version__

        return str(__version__)
    if tool == "deno":
        from kinetix.sources.youtube.readiness import _deno_path

        return _deno_path()
    return None


def check_worker(
    token_path: str, token: str, visible: list[str], expected: dict[str, str | None]
) -> tuple[str, list[str]]:
    """Run on a worker: (its host name, every problem found there)."""
    problems: list[str] = []
    path = Path(token_path)
    try:
        seen = path.read_text()
    except OSError:
        seen = None
    if seen != token:
        problems.append(
            f"does not see {path.parent} (the root must be at the same path on every node, "
            "on a shared filesystem)"
        )
    else:
        probe = path.with_name(f"{path.name}.{socket.gethostname()}.{os.getpid()}")
        try:
            probe.write_text(token)
            probe.unlink()
        except OSError as exc:
            problems.append(f"cannot write to {path.parent}: {exc.strerror or exc}")
    for name in visible:
        if not Path(name).exists():
            problems.append(f"does not see {name}")
    here = tool_versions(tuple(expected))
    for tool, want in expected.items():
        have = here.get(tool)
        if want is None:
            continue  # the parent has no such tool either: the stage does not rely on it
        if have is None:
            problems.append(f"{tool} is missing")
        elif tool != "deno" and have != want:
            problems.append(f"{tool} {have} differs from the parent's {want}")
    return socket.gethostname(), problems


def run_preflight(client: Any, preflight: Preflight) -> None:
    """Check every connected worker now; raise one line for a worker that fails."""
    preflight.write_token()
    try:
        results = client.run(
            check_worker,
            str(preflight.token_path),
            preflight._token,
            [str(p) for p in preflight.visible],
            preflight.expected(),
        )
    finally:
        preflight.remove_token()
    preflight.check(results)
