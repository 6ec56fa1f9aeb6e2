"""`meshscope run` at the terminal: Ctrl-C ends it with exit status 130 and one line, and a stream that
breaks says so on its own line."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.cli.launch import ServiceProcess, meshscope_command
from meshscope.testing import child_env
from tests.support import REPO, start_agents, start_orchestrator

pytestmark = pytest.mark.integration


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[ServiceProcess]:
    """An orchestrator process over one scripted analyst process."""
    agents = start_agents(["--agents", "analyst", "--model", "scripted"])
    try:
        running = start_orchestrator(
            tmp_path / "mesh.yaml", "agents: [analyst]\n", {"analyst": agents.address}
        )
        try:
            yield running
        finally:
            running.stop()
    finally:
        agents.stop()


def streaming_run(orchestrator: ServiceProcess) -> subprocess.Popen[str]:
    """`meshscope run` of a long answer, returned once its first text has arrived."""
    run = subprocess.Popen(
        meshscope_command("run", "analyst", "talk for a while #slow=400"),
        cwd=REPO, env=child_env({"MESHSCOPE_ORCHESTRATOR": orchestrator.address}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.stdout is not None
    assert run.stdout.read(1) == "["  # the run streams: the agent is talking
    return run


def test_ctrl_c_of_meshscope_run_exits_130_in_one_line(orchestrator: ServiceProcess) -> None:
    run = streaming_run(orchestrator)
    run.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130
    assert err.strip().splitlines() == ["meshscope: interrupted"]


def test_a_run_whose_orchestrator_goes_away_says_the_stream_broke(orchestrator: ServiceProcess) -> None:
    run = streaming_run(orchestrator)
    orchestrator.proc.kill()  # the orchestrator dies mid-run
    out, err = run.communicate(timeout=30)
    assert run.returncode == 1
    assert out.endswith("\n")  # the cut text ends its line; the error is not glued to it
    (line,) = err.strip().splitlines()  # one line
    assert line.startswith(
        f"meshscope: the run's stream from the orchestrator at {orchestrator.address} broke ("
    )
    assert "it stopped or its connection was lost; the run did not finish" in err
