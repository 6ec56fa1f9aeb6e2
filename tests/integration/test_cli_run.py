"""`meshscope run` at the terminal: Ctrl-C ends it with exit status 130 and one line, and the run with it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from meshscope.cli.launch import meshscope_command
from meshscope.testing import child_env
from tests.support import REPO, start_agents, start_orchestrator

pytestmark = pytest.mark.integration


def test_ctrl_c_of_meshscope_run_exits_130_in_one_line(tmp_path: Path) -> None:
    agents = start_agents(["--agents", "analyst", "--model", "scripted"])
    orchestrator = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml", "agents: [analyst]\n", {"analyst": agents.address}
        )
        run = subprocess.Popen(
            meshscope_command("run", "analyst", "talk for a while #slow=400"),
            cwd=REPO, env=child_env({"MESHSCOPE_ORCHESTRATOR": orchestrator.address}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert run.stdout is not None
        first = run.stdout.read(1)  # the run streams: the agent is talking
        assert first == "["
        run.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, err = run.communicate(timeout=30)
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()
    assert run.returncode == 130
    assert err.strip().splitlines() == ["meshscope: interrupted"]
