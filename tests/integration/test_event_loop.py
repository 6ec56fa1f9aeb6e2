"""MESHSCOPE_EVENT_LOOP: a server process runs on the loop chosen, and stops on SIGTERM as ever."""

from __future__ import annotations

import asyncio

import pytest

from meshscope.services.runtime.client import AgentClient
from tests.support import run_cli, start_agents

pytestmark = pytest.mark.integration

uvloop = pytest.importorskip("uvloop", reason="the uvloop extra is not installed")


@pytest.mark.parametrize(("setting", "loop"), [("asyncio", "asyncio"), ("uvloop", "uvloop"), ("", "uvloop")])
def test_the_server_runs_on_the_loop_chosen_and_drains_on_sigterm(setting: str, loop: str) -> None:
    agents = start_agents(
        ["--agents", "analyst"],
        {"MESHSCOPE_EVENT_LOOP": setting, "MESHSCOPE_LOG_LEVEL": "INFO", "MESHSCOPE_SHUTDOWN_GRACE_S": "20"},
    )
    try:
        # The start line names the class of the loop the server found running (`loops.loop_name`).
        assert any(f"plaintext, {loop} event loop)" in line for line in agents.log), agents.log

        async def turn() -> list[str]:
            kinds: list[str] = []
            async with AgentClient(agents.address) as client:
                async for event in client.invoke("analyst", "long answer #slow=20", session_id="s"):
                    kinds.append(str(event.WhichOneof("kind")))
                    if kinds.count("text_delta") == 1:
                        agents.terminate()
            return kinds

        kinds = asyncio.run(turn())
        assert kinds[-1] == "reply_end" and kinds.count("text_delta") > 20
        assert agents.proc.wait(timeout=30) == 0
    finally:
        agents.stop()


def test_a_bad_loop_is_one_line_and_exit_2() -> None:
    result = run_cli(["serve", "agents", "--agents", "echo", "--port", "0"], {"MESHSCOPE_EVENT_LOOP": "trio"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "meshscope: MESHSCOPE_EVENT_LOOP='trio' is not valid: expected auto, asyncio or uvloop"
    ]
