"""The README's Python example is a file that runs (examples/talk_to_an_agent.py holds the same code)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from meshscope.testing import child_env
from tests.support import REPO, start_agents

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "talk_to_an_agent.py"


def readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the README has one Python example"
    return str(blocks[0])


def test_the_readme_example_is_the_example_file() -> None:
    assert EXAMPLE.read_text().endswith(readme_python())


def test_the_readme_example_runs_as_a_file(tmp_path: Path) -> None:
    agents = start_agents(["--agents", "analyst", "--model", "scripted"])
    try:
        script = tmp_path / "example.py"
        script.write_text(EXAMPLE.read_text().replace("127.0.0.1:50051", agents.address))
        done = subprocess.run(
            [sys.executable, str(script)],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        agents.stop()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "analyst: turn 1. You said: Compare gRPC and REST."
    assert lines[1:] == [
        "[user] Compare gRPC and REST",
        "[analyst] analyst: turn 1. You said: Compare gRPC and REST.",
    ]
