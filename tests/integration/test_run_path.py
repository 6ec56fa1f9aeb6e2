"""The orchestrator's run path against real agent servers: a single agent's or a sequence's
events go straight from the agent's stream to the caller; only parallel steps run in tasks,
merged through one queue; a run stops at its deadline or cut-off wherever its caller is."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from meshscope.discovery.model import Instance, replica_id_for
from meshscope.discovery.watcher import StaticWatcher
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.pipelines import parse_mesh
from meshscope.orchestrator.pool import EndpointPool
from meshscope.orchestrator.runs import OutEvent, Run, RunFailed, Runner, encoded
from meshscope.orchestrator.service import OrchestratorServer
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.server import AgentServer
from meshscope.testing import free_port, wait_for
from meshscope.v1 import agent_pb2, common_pb2, orchestrator_pb2
from meshscope.wire import user_message
from tests.conftest import StartServer

pytestmark = pytest.mark.integration

MESH = """
agents: [analyst, writer, researcher]
pipelines:
  analysis: {kind: sequential, steps: [analyst, writer]}
  review: {kind: fanout, agents: [analyst, researcher], aggregator: writer}
"""
ORCHESTRATOR_CODE = Path(__file__).resolve().parents[2] / "orchestrator"


def orchestrator_tasks() -> list[str]:
    """The tasks of this loop that run orchestrator code of their own (not gRPC's call handlers)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and Path(code.co_filename).parent == ORCHESTRATOR_CODE:
            found.append(code.co_qualname)
    return sorted(found)


@pytest.fixture
async def agents(start_server: StartServer) -> AgentServer:
    return await start_server(["analyst", "writer", "researcher"])


@pytest.fixture
async def orchestrator(agents: AgentServer) -> AsyncIterator[OrchestratorServer]:
    server = OrchestratorServer(
        parse_mesh(MESH, "test-mesh"),
        StaticWatcher({name: [("127.0.0.1", agents.port)] for name in agents.agents}),
        OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0),
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def pool(agents: AgentServer) -> AsyncIterator[EndpointPool]:
    pool = EndpointPool()
    for name in agents.agents:
        pool.update(
            name, [Instance(name, replica_id_for(name, "127.0.0.1", agents.port), "127.0.0.1", agents.port)]
        )
    yield pool
    await pool.close()


def as_sent(event: OutEvent) -> orchestrator_pb2.RunEvent:
    """A run's event as its caller decodes it (relayed events carry their agent event encoded)."""
    return orchestrator_pb2.RunEvent.FromString(encoded(event))


def a_run(target: str, text: str, timeout_s: float = 30) -> Run:
    request = orchestrator_pb2.RunRequest(target=target, input=user_message(text), session_id="s")
    return Run(request=request, deadline=time.monotonic() + timeout_s)


async def tasks_seen_during(orchestrator: OrchestratorServer, target: str) -> set[str]:
    """Every orchestrator task alive at any event of a run of `target` (which must succeed)."""
    seen: set[str] = set()
    ends = 0
    async with OrchestratorClient(orchestrator.address) as client:
        async for event in client.run(target, "compare grpc and rest", session_id="s"):
            seen.update(orchestrator_tasks())  # the client and the orchestrator share this loop
            ends += event.HasField("run_end")
    assert ends == 1
    return seen


async def test_a_single_agent_and_a_sequence_relay_in_the_callers_task(
    orchestrator: OrchestratorServer,
) -> None:
    assert await tasks_seen_during(orchestrator, "analyst") == set()
    assert await tasks_seen_during(orchestrator, "analysis") == set()


async def test_only_parallel_steps_run_in_tasks_of_their_own(orchestrator: OrchestratorServer) -> None:
    assert await tasks_seen_during(orchestrator, "review") == {"_pump"}


async def _cancelled(server: AgentServer) -> int:
    return server.stats.cancelled


async def _in_flight(server: AgentServer) -> int:
    return server.stats.in_flight


async def _now() -> float:
    return time.monotonic()


async def test_a_deadline_passing_while_the_caller_holds_an_event_ends_the_run_at_the_next(
    agents: AgentServer, pool: EndpointPool
) -> None:
    run = a_run("analyst", "talk for a while #slow", timeout_s=0.5)
    runner = Runner(pool, parse_mesh(MESH, "test-mesh"))
    async with contextlib.aclosing(runner.stream(run)) as events:
        async for event in events:
            if as_sent(event).agent_event.HasField("text_delta"):
                break  # and hold it past the deadline
        await wait_for(_now, lambda now: now > run.deadline + 0.1, timeout=5)
        # The events the agent sent meanwhile are not relayed: the run is over.
        error = as_sent(await anext(events))
        assert error.error.code == "DEADLINE_EXCEEDED", error
        assert error.error.reason == common_pb2.ERROR_REASON_DEADLINE
        with pytest.raises(RunFailed) as failed:
            await anext(events)
    assert failed.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_for(lambda: _cancelled(agents), lambda n: n == 1, timeout=5)


async def test_a_cut_off_while_the_caller_holds_an_event_ends_the_run_at_the_next(
    agents: AgentServer, pool: EndpointPool
) -> None:
    runner = Runner(pool, parse_mesh(MESH, "test-mesh"))
    async with contextlib.aclosing(runner.stream(a_run("analyst", "talk for a while #slow"))) as events:
        async for event in events:
            if as_sent(event).agent_event.HasField("text_delta"):
                break
        assert runner.interrupt("cut off for the test") == 1
        error = as_sent(await anext(events))
        assert (error.error.code, error.error.message) == ("UNAVAILABLE", "cut off for the test")
        assert error.error.reason == common_pb2.ERROR_REASON_CUT_OFF
        with pytest.raises(RunFailed):
            await anext(events)
    await wait_for(lambda: _cancelled(agents), lambda n: n == 1, timeout=5)
    assert runner.idle.is_set()


async def test_closing_a_fanout_run_cancels_every_parallel_agent_call(
    agents: AgentServer, pool: EndpointPool
) -> None:
    runner = Runner(pool, parse_mesh(MESH, "test-mesh"))
    streaming: set[str] = set()
    async with contextlib.aclosing(runner.stream(a_run("review", "both of you, at length #slow"))) as events:
        async for event in events:
            if as_sent(event).agent_event.HasField("text_delta"):
                streaming.add(event.agent)
            if streaming == {"analyst", "researcher"}:
                break  # the caller leaves with both steps streaming
    assert orchestrator_tasks() == []
    await wait_for(lambda: _cancelled(agents), lambda n: n == 2, timeout=5)
    assert agents.stats.in_flight == 0


async def test_a_failed_parallel_step_cancels_its_sibling_and_fails_the_run(
    agents: AgentServer, pool: EndpointPool
) -> None:
    dead = free_port()  # nothing listens there: the researcher step fails before its first event
    pool.update(
        "researcher",
        [Instance("researcher", replica_id_for("researcher", "127.0.0.1", dead), "127.0.0.1", dead)],
    )
    runner = Runner(pool, parse_mesh(MESH, "test-mesh"), attempts=1)
    events: list[orchestrator_pb2.RunEvent] = []
    with pytest.raises(RunFailed) as failed:
        async with contextlib.aclosing(
            runner.stream(a_run("review", "both of you, at length #slow"))
        ) as stream:
            async for event in stream:
                events.append(as_sent(event))
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    assert failed.value.reason == common_pb2.ERROR_REASON_AGENT_UNAVAILABLE
    assert events[-1].error.code == "UNAVAILABLE" and "researcher" in events[-1].error.message
    assert orchestrator_tasks() == []
    # The analyst's call, started beside it, was cancelled rather than left to stream.
    await wait_for(lambda: _in_flight(agents), lambda n: n == 0, timeout=5)
    assert agents.stats.completed == 0


async def _sent_bytes(orchestrator: OrchestratorServer, text: str) -> tuple[list[bytes], grpc.StatusCode]:
    """Every event of a run of the analyst on `text`, as the orchestrator encoded it, and the status."""
    sent: list[bytes] = []
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        run = channel.unary_stream(
            "/meshscope.v1.Orchestrator/Run",
            request_serializer=orchestrator_pb2.RunRequest.SerializeToString,
            response_deserializer=None,  # the bytes themselves
        )
        request = orchestrator_pb2.RunRequest(target="analyst", input=user_message(text), session_id="raw")
        call = run(request)
        try:
            async for raw in call:
                sent.append(raw)
        except grpc.aio.AioRpcError as error:
            return sent, error.code()
    return sent, grpc.StatusCode.OK


@pytest.mark.parametrize(("text", "status"), [("look it up #tool", "OK"), ("now fail #fail", "INTERNAL")])
async def test_agent_events_are_relayed_as_the_agent_encoded_them_in_plain_run_events(
    orchestrator: OrchestratorServer, agents: AgentServer, text: str, status: str
) -> None:
    """Relayed undecoded (relay.proto), each event is still exactly the RunEvent the orchestrator
    built when it decoded the agent's event and encoded it again: decoding and re-encoding what
    the client received gives the same bytes, and the agent's events come through whole."""
    sent, code = await _sent_bytes(orchestrator, text)
    assert code.name == status
    events = [orchestrator_pb2.RunEvent.FromString(raw) for raw in sent]
    assert [e.SerializeToString() for e in events] == sent
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    relayed = [e for e in events if e.HasField("agent_event")]
    assert {(e.step, e.agent, e.replica) for e in relayed} == {
        ("analyst", "analyst", replica_id_for("analyst", "127.0.0.1", agents.port))
    }
    assert {e.run_id for e in events} == {events[0].run_id}
    agent_events = [e.agent_event for e in relayed]
    assert [e.sequence for e in agent_events] == list(range(1, len(agent_events) + 1))
    kinds = [e.WhichOneof("kind") for e in agent_events]
    # What the agent streams for the same request, straight.
    async with AgentClient(agents.address) as client:
        straight = [e.WhichOneof("kind") async for e in _events_of(client, text)]
    assert kinds == straight
    if status == "OK":
        assert {"tool_call_delta", "tool_result_end", "text_delta", "reply_end"} <= set(kinds)
        end = events[-1].run_end
        assert end.output == agent_events[-1].reply_end.message
        assert end.usage == agent_events[-1].reply_end.message.usage and end.usage.output_tokens > 0
        assert list(end.replicas) == [relayed[0].replica]
    else:
        assert kinds[-1] == "error" and events[-1].error.code == "INTERNAL"


async def _events_of(client: AgentClient, text: str) -> AsyncIterator[agent_pb2.AgentEvent]:
    """The agent's own stream for `text` (its final status, if a failure, swallowed)."""
    try:
        async with contextlib.aclosing(client.invoke("analyst", text, session_id="straight")) as events:
            async for event in events:
                yield event
    except grpc.aio.AioRpcError:
        return
