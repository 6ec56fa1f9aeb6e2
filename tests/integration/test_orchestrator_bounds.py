"""What the orchestrator sends grows with user data: every hop is bounded ([5/13], fault 4).

The orchestrator's message limit (64 KiB here) is smaller than the agents' (4 MiB), so an
agent's event that fits its own limit can be too large to relay in the run's envelope, a
step's input (a team's brief repeats the request) can outgrow the limit, and so can a
fan-out's joined output in the run's end. Each ends with an `error` event and a
RESOURCE_EXHAUSTED saying which, never a bare transport status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from meshscope.discovery.watcher import StaticWatcher
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.pipelines import parse_mesh
from meshscope.orchestrator.service import OrchestratorServer
from meshscope.v1 import common_pb2, orchestrator_pb2
from meshscope.wire import declared_reason
from tests.conftest import StartServer

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024
MESH = """
agents: [analyst, writer, manager]
pipelines:
  both: {kind: fanout, agents: [analyst, writer]}
  crew: {kind: team, manager: manager, workers: [analyst]}
"""


@pytest.fixture
async def orchestrator(start_server: StartServer) -> AsyncIterator[OrchestratorServer]:
    agents = await start_server(["analyst", "writer", "manager"])
    at = [("127.0.0.1", agents.port)]
    server = OrchestratorServer(
        parse_mesh(MESH, "test-mesh"),
        StaticWatcher({"analyst": at, "writer": at, "manager": at}),
        OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0, max_message_bytes=LIMIT),
    )
    await server.start()
    yield server
    await server.stop()


async def _run(
    server: OrchestratorServer, target: str, text: str
) -> tuple[list[orchestrator_pb2.RunEvent], str]:
    events: list[orchestrator_pb2.RunEvent] = []
    async with OrchestratorClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for event in client.run(target, text):
                events.append(event)
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, failed.value.details()
    assert events[-1].HasField("error")
    assert events[-1].error.code == "RESOURCE_EXHAUSTED"
    assert events[-1].error.message == failed.value.details()
    assert events[-1].error.reason == common_pb2.ERROR_REASON_TOO_LARGE
    assert declared_reason(failed.value.trailing_metadata()) == common_pb2.ERROR_REASON_TOO_LARGE
    return events, failed.value.details() or ""


DELTA_OVERHEAD = 19
"""What the analyst's first text delta (the whole input it quotes, in one delta) adds to it:
its sequence, time and the block id (a delta names neither reply nor agent)."""
REPLY_END_OVERHEAD = 263
"""What the analyst's reply_end event adds to an input it quotes (ids, names, time, its words)."""


async def test_an_event_too_large_to_relay_ends_the_run_with_an_error_event(
    orchestrator: OrchestratorServer,
) -> None:
    # The agent's reply quotes the input: its text delta arrives within the limit (30 bytes
    # to spare), and the run's envelope around it would not fit.
    _, message = await _run(orchestrator, "analyst", "x" * (LIMIT - DELTA_OVERHEAD - 30))
    assert message.startswith("step 'analyst': agent 'analyst' sent an event of ")
    assert f"too large to relay within the {LIMIT}-byte message limit" in message


async def test_an_event_over_the_limit_on_the_agent_hop_says_which_limit(
    orchestrator: OrchestratorServer,
) -> None:
    # The text delta is relayed (its envelope fits in the ~130 bytes left); the reply_end,
    # which quotes the input too, is over the limit on the agent hop.
    _, message = await _run(orchestrator, "analyst", "x" * (LIMIT - REPLY_END_OVERHEAD + 100))
    assert "Received message larger than max" in message
    assert "give both the same MESHSCOPE_GRPC_MAX_MESSAGE_BYTES" in message


async def test_a_step_input_over_the_limit_fails_the_step_by_name(orchestrator: OrchestratorServer) -> None:
    # The manager's plan quotes the request, and the workers' brief holds both: ~1.2x the limit.
    _, message = await _run(orchestrator, "crew", "y" * int(LIMIT * 0.6))
    assert message.startswith("step 'worker:analyst': the input for agent 'analyst' is ")
    assert f"over the {LIMIT}-byte message limit" in message


async def test_a_run_end_too_large_for_its_output_says_so(orchestrator: OrchestratorServer) -> None:
    # Each reply fits; the fan-out's joined output does not.
    events, message = await _run(orchestrator, "both", "z" * (LIMIT // 2))
    assert message.startswith("the run finished, but its output (")
    assert {e.agent for e in events if e.HasField("agent_event") and e.agent_event.HasField("reply_end")} == {
        "analyst",
        "writer",
    }
