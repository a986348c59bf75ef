"""Checks every cluster worker passes before it gets a task: same root, writable, same tools.

The parent writes a token file with a random value under the output root; each worker reads
it back at the same path (so it sees the same filesystem there, not a look-alike folder on its
own disk), writes a file next to it, and reports the versions of the tools the stage needs.
A tool is a ``Tool`` (name + version finder): a stage that needs ffmpeg or deno hands in the
finder its own package owns (``process.ffmpeg.FFMPEG_TOOL``,
``sources.youtube.readiness.DENO_TOOL``), so this module imports nothing above ``executors``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinetix.errors import ConfigError


@dataclass(frozen=True)
class Tool:
    """A tool every worker must have: its name and how to read its version (None: missing)."""

    name: str
    version: Callable[[], str | None]  # a module-level function: it is pickled to the workers


def _av_version() -> str | None:
    import av

    return str(av.__version__)


def _ytdlp_version() -> str | None:
    from yt_dlp.version import __version__

    return str(__version__)


AV_TOOL = Tool("av", _av_version)
YT_DLP_TOOL = Tool("yt_dlp", _ytdlp_version)
# Tools named by a string; the rest come as ``Tool`` values from the package that finds them.
_BY_NAME = {t.name: t for t in (AV_TOOL, YT_DLP_TOOL)}


@dataclass(frozen=True)
class Preflight:
    """What each worker must have: ``writable`` (a folder of the root), ``visible`` files, tools."""

    writable: Path
    visible: tuple[Path, ...] = ()
    tools: tuple[Tool | str, ...] = ()
    _token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        unknown = sorted(t for t in self.tools if isinstance(t, str) and t not in _BY_NAME)
        if unknown:
            raise ConfigError(
                f"unknown preflight tools {unknown}; valid values are {', '.join(_BY_NAME)} "
                "or a Tool value"
            )
        tools = tuple(_BY_NAME[t] if isinstance(t, str) else t for t in self.tools)
        object.__setattr__(self, "tools", tools)

    @property
    def finders(self) -> dict[str, Callable[[], str | None]]:
        """Each tool's version finder by name, as the workers receive them."""
        return {t.name: t.version for t in self.tools if isinstance(t, Tool)}

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
        return tool_versions(self.finders)

    def check(self, results: dict[str, tuple[str, list[str]]]) -> None:
        """Raise one line for the first worker (by address) that failed, naming host and problem."""
        bad = {addr: r for addr, r in results.items() if r[1]}
        if not bad:
            return
        addr = sorted(bad)[0]
        host, problems = bad[addr]
        more = f" ({len(bad) - 1} more worker(s) failed too)" if len(bad) > 1 else ""
        raise ConfigError(f"worker {addr} on {host}: {'; '.join(problems)}{more}")


def tool_versions(finders: Mapping[str, Callable[[], str | None]]) -> dict[str, str | None]:
    """Version of each tool here, None when it is missing."""
    found: dict[str, str | None] = {}
    for name, version in finders.items():
        try:
            found[name] = version()
        except Exception:
            found[name] = None
    return found


def check_worker(
    token_path: str,
    token: str,
    visible: list[str],
    expected: dict[str, str | None],
    finders: Mapping[str, Callable[[], str | None]] | None = None,
) -> tuple[str, list[str]]:
    """Run on a worker: (its host name, every problem found there).

    ``finders`` read each tool's version here (default: the ones named by a string).
    """
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
    found = finders if finders is not None else {n: _BY_NAME[n].version for n in expected}
    here = tool_versions({name: found[name] for name in expected if name in found})
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
            preflight.finders,
        )
    finally:
        preflight.remove_token()
    preflight.check(results)
