"""CI proves the README (issue 13, defect 6): its own commands, in fresh virtualenvs, with and
without the optional extras; the demo's batch does not need torch."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from _roots import RootClip, build_videos_root, clips

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.strip()]  # fmt: skip


def test_ci_runs_the_readmes_commands_in_fresh_virtualenvs() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    commands = quick_start_commands()
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command == "pip install -e '.[dev]' && python -m pytest"
    assert f"\n{test_command}\n" in ci  # verbatim, on its own line
    # the user install the first command starts with, then the offline stand-in for its download
    assert "pip install -q .\n" in ci and "kinetix demo" in ci
    # every stage starts from a new, empty virtualenv: nothing leaks in from the machine
    assert "--system-site-packages" not in ci
    venvs = re.findall(r"^fresh_venv (\w+)$", ci, re.M)
    assert venvs == ["dev", "extras", "user"]
    assert 'python3 -m venv "$work/$1"' in ci


def test_demo_batch_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kinetix.demo import _load

    labels = ["abseiling", "air drumming", "abseiling", "archery", "archery"]
    root = build_videos_root(tmp_path / "k400", [RootClip(c) for c in clips("val", labels)])
    # ``import torch`` and ``from torch.utils.data import ...`` raise ImportError: a submodule
    # already imported would otherwise be found in sys.modules without its parent
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")] or ["torch"]:
        monkeypatch.setitem(sys.modules, name, None)
    lines: list[str] = []
    shape, batch_labels = _load(root, lines.append)
    assert shape[:2] == (4, 8) and len(batch_labels) == 4
    assert "torch not installed, numpy" in lines[0]
