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


def test_a_run_whose_orchestrator_goes_away_says_the_stream_broke(tmp_path: Path) -> None:
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
        assert run.stdout.read(1) == "["  # the run streams
        orchestrator.proc.kill()  # the orchestrator dies mid-run
        out, err = run.communicate(timeout=30)
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()
    assert run.returncode == 1
    assert out.endswith("\n")  # the cut text ends its line; the error is not glued to it
    (line,) = err.strip().splitlines()  # one line
    assert line.startswith(
        f"meshscope: the run's stream from the orchestrator at {orchestrator.address} broke ("
    )
    assert "it stopped or its connection was lost; the run did not finish" in err
