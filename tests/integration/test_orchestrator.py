"""The orchestrator against real agent servers (in-process, real gRPC on loopback)."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshscope.channels import ChannelSettings, open_channel
from meshscope.discovery.config import ConsulSettings
from meshscope.discovery.model import Instance
from meshscope.discovery.watcher import ConsulWatcher, StaticWatcher
from meshscope.orchestrator.calls import stream_step
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.pipelines import PipelineError, parse_mesh
from meshscope.orchestrator.pool import EndpointPool
from meshscope.orchestrator.service import OrchestratorServer
from meshscope.services.runtime.server import AgentServer
from meshscope.testing import ConsulDevAgent, free_port, health_status, wait_for
from meshscope.v1 import agent_pb2, common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import declared_reason, user_message
from tests.conftest import StartServer, hosted
from tests.support import run_cli, start_agents, start_orchestrator

pytestmark = pytest.mark.integration

MESH = """
agents: [analyst, writer, researcher, coder, manager, echo]
pipelines:
  analysis: {kind: sequential, steps: [analyst, writer]}
  project: {kind: team, manager: manager, workers: [researcher, coder]}
  review: {kind: fanout, agents: [analyst, researcher], aggregator: writer}
  triage: {kind: route, router: manager, choices: [researcher, coder]}
"""

StartMesh = Callable[..., Awaitable[OrchestratorClient]]
_ORCHESTRATORS: dict[str, OrchestratorServer] = {}


@pytest.fixture
async def start_mesh(start_server: StartServer) -> AsyncIterator[StartMesh]:
    """Agent servers + an orchestrator that finds them through the static backend."""
    orchestrators: list[OrchestratorServer] = []
    clients: list[OrchestratorClient] = []

    async def start(
        servers: Sequence[AgentServer], *, extra: dict[str, list[str]] | None = None, **settings: object
    ) -> OrchestratorClient:
        endpoints: dict[str, list[tuple[str, int]]] = {}
        for server in servers:
            for name in server.agents:
                endpoints.setdefault(name, []).append(("127.0.0.1", server.port))
        for name, addresses in (extra or {}).items():
            endpoints.setdefault(name, []).extend(("127.0.0.1", int(a.rsplit(":", 1)[1])) for a in addresses)
        config = OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0).with_overrides(
            **settings
        )
        orchestrator = OrchestratorServer(parse_mesh(MESH, "test-mesh"), StaticWatcher(endpoints), config)
        await orchestrator.start()
        orchestrators.append(orchestrator)
        client = OrchestratorClient(orchestrator.address)
        _ORCHESTRATORS[client.target] = orchestrator
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for orchestrator in orchestrators:
        await orchestrator.stop()


async def collect(
    client: OrchestratorClient, target: str, text: str, **kw: object
) -> list[orchestrator_pb2.RunEvent]:
    return [event async for event in client.run(target, text, **kw)]  # type: ignore[arg-type]


def deltas(events: list[orchestrator_pb2.RunEvent], agent: str) -> str:
    return "".join(
        e.agent_event.text_delta.delta
        for e in events
        if e.agent == agent and e.agent_event.HasField("text_delta")
    )


async def test_sequential_events_arrive_in_order_and_are_streamed(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    agents = await start_server(
        [hosted("analyst", "scripted:delay_ms=30"), hosted("writer", "scripted:delay_ms=30")]
    )
    client = await start_mesh([agents])
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, orchestrator_pb2.RunEvent]] = []
    async for event in client.run("analysis", "Compare gRPC and REST", session_id="s1"):
        arrivals.append((loop.time(), event))
    events = [e for _, e in arrivals]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].run_start.kind == "sequential"
    assert events[-1].HasField("run_end")
    steps = [e.step for e in events if e.HasField("agent_event") and e.agent_event.HasField("reply_start")]
    assert steps == ["analyst", "writer"]
    first_delta = next(
        t for t, e in arrivals if e.agent == "analyst" and e.agent_event.HasField("text_delta")
    )
    writer_start = next(
        t for t, e in arrivals if e.agent == "writer" and e.agent_event.HasField("reply_start")
    )
    assert writer_start - first_delta > 0.15  # the analyst's words reached us while it was still talking
    assert deltas(events, "writer").startswith("writer: turn 1. You said: analyst: turn 1.")
    end = events[-1].run_end
    assert end.steps == 2
    assert end.output.name == "writer"
    assert end.usage.output_tokens > 0
    assert all(e.replica for e in events if e.HasField("agent_event"))
    # Each agent keeps its own session: a second run continues both conversations.
    again = await collect(client, "analysis", "And their costs?", session_id="s1")
    assert "turn 2" in deltas(again, "analyst")
    assert "turn 2" in deltas(again, "writer")


async def test_team_workers_run_in_parallel_and_the_manager_synthesises(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    agents = await start_server(
        [hosted(a, "scripted:delay_ms=20") for a in ("manager", "researcher", "coder")]
    )
    client = await start_mesh([agents])
    events = await collect(client, "project", "Build a rate limiter", session_id="t1")
    labelled = [
        (e.step, e.agent)
        for e in events
        if e.HasField("agent_event") and e.agent_event.HasField("text_delta")
    ]
    steps = list(dict.fromkeys(step for step, _ in labelled))
    assert steps == ["plan", "worker:researcher", "worker:coder", "synthesis"] or steps == [
        "plan",
        "worker:coder",
        "worker:researcher",
        "synthesis",
    ]
    workers = [step for step, _ in labelled if step.startswith("worker:")]
    switches = sum(1 for a, b in itertools.pairwise(workers) if a != b)
    assert switches >= 4, "worker streams did not interleave"
    synthesis = deltas([e for e in events if e.step == "synthesis"], "manager")
    assert "Results from the team" in synthesis and "[researcher]" in synthesis and "[coder]" in synthesis
    assert events[-1].run_end.steps == 4


async def test_fanout_and_route(start_server: StartServer, start_mesh: StartMesh) -> None:
    agents = await start_server(["analyst", "researcher", "writer", "manager", "coder"])
    client = await start_mesh([agents])
    review = await collect(client, "review", "what is consul")
    assert {e.step for e in review if e.HasField("agent_event")} == {"analyst", "researcher", "aggregate"}
    assert "Summarise these answers" in deltas(review, "writer")
    routed = await collect(client, "triage", "please hand this to the coder")
    assert [
        e.step for e in routed if e.HasField("agent_event") and e.agent_event.HasField("reply_start")
    ] == ["route", "coder"]
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await collect(client, "triage", "send it to the writer #route=writer")
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "chose 'writer', which is not among the allowed agents: researcher, coder" in str(
        failure.value.details()
    )
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_ROUTING_FAILED


async def test_router_error_is_an_error_event(start_server: StartServer, start_mesh: StartMesh) -> None:
    agents = await start_server(["manager", "researcher", "coder"])
    client = await start_mesh([agents])
    events: list[orchestrator_pb2.RunEvent] = []
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for event in client.run("triage", "nobody in particular #route="):
            events.append(event)
    assert events[-1].HasField("error")
    assert "named no agent; allowed: researcher, coder" in events[-1].error.message
    assert events[-1].error.reason == common_pb2.ERROR_REASON_ROUTING_FAILED
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_ROUTING_FAILED


async def test_unknown_target_and_missing_replicas(start_server: StartServer, start_mesh: StartMesh) -> None:
    agents = await start_server(["analyst"])
    client = await start_mesh([agents])
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await collect(client, "poem", "x")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "known: analysis, analyst" in str(unknown.value.details())
    assert declared_reason(unknown.value.trailing_metadata()) == common_pb2.ERROR_REASON_NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await collect(client, "analysis", "x")
    assert missing.value.code() == grpc.StatusCode.UNAVAILABLE
    assert missing.value.details() == "agent 'writer' has no healthy replica"
    assert declared_reason(missing.value.trailing_metadata()) == common_pb2.ERROR_REASON_AGENT_UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await collect(client, "", "x")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert declared_reason(empty.value.trailing_metadata()) == common_pb2.ERROR_REASON_INVALID_INPUT
    with pytest.raises(grpc.aio.AioRpcError) as huge:  # beyond gRPC's metadata limit if quoted whole
        await collect(client, "x" * 100_000, "x")
    assert huge.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert huge.value.details() == "target: must be at most 256 characters, got 100000"
    async with open_channel(client.target, ChannelSettings()) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        request = orchestrator_pb2.RunRequest(
            target="analyst", input=common_pb2.Message(parts=[common_pb2.Part(text="x")])
        )
        request.timeout.seconds = 2**62  # overflows a timedelta, and any gRPC deadline
        with pytest.raises(grpc.aio.AioRpcError) as endless:
            async for _ in stub.Run(request):
                pass
    assert endless.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(endless.value.details()).startswith("timeout: must be positive and at most")


async def test_runs_spread_evenly_over_three_replicas(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    replicas = [await start_server(["echo"]) for _ in range(3)]
    client = await start_mesh(replicas)

    async def one(i: int) -> str:
        events = await collect(client, "echo", f"run {i}")
        return next(e.replica for e in events if e.HasField("agent_event"))

    served: Counter[str] = Counter()
    for batch in range(10):
        served.update(await asyncio.gather(*(one(batch * 30 + i) for i in range(30))))
    assert sum(served.values()) == 300
    assert len(served) == 3
    assert all(75 <= count <= 125 for count in served.values()), served


async def test_a_dead_replica_before_the_first_event_is_retried_elsewhere(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    live = await start_server(["echo"])
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    client = await start_mesh([live], extra={"echo": [dead]})
    results = await asyncio.gather(*(collect(client, "echo", f"try {i}") for i in range(40)))
    assert all(r[-1].HasField("run_end") for r in results)
    assert live.stats.completed == 40


async def test_deadline_exceeded_cancels_the_agents_turn(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    agents = await start_server(["analyst"])
    client = await start_mesh([agents])
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await collect(client, "analyst", "go on and on #slow", timeout=0.5)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_DEADLINE
    await wait_for(lambda: _cancelled(agents), lambda n: n == 1, timeout=5)
    assert agents.stats.in_flight == 0


async def test_client_cancel_reaches_the_agent(start_server: StartServer, start_mesh: StartMesh) -> None:
    agents = await start_server(["analyst"])
    client = await start_mesh([agents])
    seen = 0
    async for event in client.run("analyst", "talk for a while #slow"):
        seen += event.HasField("agent_event") and event.agent_event.HasField("text_delta")
        if seen == 3:
            break
    await wait_for(lambda: _cancelled(agents), lambda n: n == 1, timeout=5)
    model = agents.agents["analyst"].model
    assert getattr(model, "cancelled_calls", 0) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "agents: [a]\npipelines:\n  p: {kind: loop, steps: [a]}\n",
            "m.yaml:3: pipelines.p.kind: unknown kind 'loop'",
        ),
        (
            "agents: [a]\npipelines:\n  p:\n    kind: sequential\n    steps: [a, b]\n",
            "m.yaml:5: pipelines.p.steps[1]: unknown agent 'b' (agents: a)",
        ),
        (
            "agents: [a]\npipelines:\n  p: {kind: team, manager: a}\n",
            "m.yaml:3: pipelines.p: a team pipeline needs 'workers'",
        ),
        (
            "agents: [a]\npipelines:\n  p: {kind: sequential, steps: [a], extra: 1}\n",
            "m.yaml:3: pipelines.p.extra: unknown field for a sequential pipeline",
        ),
        (
            "agents: [a]\npipelines:\n  p: {kind: sequential, steps: [q]}\n"
            "  q: {kind: sequential, steps: [p]}\n",
            "m.yaml:3: pipelines.p.steps: pipelines call each other in a cycle: p -> q -> p",
        ),
        ("agents: [a\n", "m.yaml:2: not valid YAML"),
        ("agents: !!python/name:os.system\n", "m.yaml:1: not valid YAML"),  # safe_load refuses the tag
        ("agents: {a: {}, [x]: {}}\n", "m.yaml:1: not valid YAML: found unhashable key"),
    ],
)
def test_mesh_file_errors_name_file_line_and_reason(text: str, message: str) -> None:
    with pytest.raises(PipelineError) as error:
        parse_mesh(text, "m.yaml")
    assert str(error.value).startswith(message), str(error.value)


async def _cancelled(server: AgentServer) -> int:
    return server.stats.cancelled


async def test_list_agents_and_pipelines(start_server: StartServer, start_mesh: StartMesh) -> None:
    agents = await start_server(["analyst", "writer"])
    client = await start_mesh([agents])
    listed = await client.list_agents()
    by_name = {a.name: a for a in listed.agents}
    assert [r.address for r in by_name["analyst"].replicas] == [agents.address]
    assert by_name["analyst"].replicas[0].health == "passing"
    assert by_name["coder"].replicas == []  # declared in the mesh file, not running
    pipelines = await client.list_pipelines()
    assert [(p.name, p.kind) for p in pipelines.pipelines] == [
        ("analysis", "sequential"),
        ("project", "team"),
        ("review", "fanout"),
        ("triage", "route"),
    ]
    assert list(pipelines.pipelines[1].agents) == ["manager", "researcher", "coder"]


async def test_a_new_replica_gets_traffic_within_2s_of_registering(consul: ConsulDevAgent) -> None:
    first = start_agents(["--agents", "echo"], consul.env())
    second = None
    orchestrator = OrchestratorServer(
        parse_mesh(MESH, "test-mesh"),
        ConsulWatcher(ConsulSettings.from_env({"CONSUL_HTTP_ADDR": consul.http_addr})),
        OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0),
    )
    await orchestrator.start()
    try:
        async with OrchestratorClient(orchestrator.address) as client:
            await wait_for(lambda: _replicas(client), lambda r: len(r) == 1, timeout=10)
            second = start_agents(["--agents", "echo"], consul.env())
            ready = time.monotonic()

            async def served_by() -> set[str]:
                runs = await asyncio.gather(*(collect(client, "echo", "hi") for _ in range(8)))
                return {next(e.replica for e in r if e.HasField("agent_event")) for r in runs}

            await wait_for(served_by, lambda ids: f"echo@{second.address}" in ids, timeout=2, interval=0.05)
            assert time.monotonic() - ready < 2
    finally:
        await orchestrator.stop()
        first.stop()
        if second is not None:
            second.stop()


async def _replicas(client: OrchestratorClient) -> list[str]:
    listed = await client.list_agents()
    return [r.id for a in listed.agents if a.name == "echo" for r in a.replicas]


def test_meshscope_run_and_pipelines_from_the_command_line(tmp_path: Path) -> None:
    agents = start_agents(["--agents", "analyst,writer"])
    orchestrator = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml",
            "agents: [analyst, writer]\n"
            "pipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n",
            {"analyst": agents.address, "writer": agents.address},
        )
        client_env = {"MESHSCOPE_ORCHESTRATOR": orchestrator.address}
        result = run_cli(["run", "analysis", "Compare gRPC and REST", "--session", "cli"], client_env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        # Each step under its agent and the replica that served it.
        assert re.match(
            r"\[analyst @ analyst@127\.0\.0\.1:\d+\] analyst: turn 1\. You said: Compare gRPC", lines[0]
        )
        assert re.match(r"\[writer @ writer@127\.0\.0\.1:\d+\] writer: turn 1\.", lines[1])
        assert "2 step(s)" in lines[-1]
        listed = run_cli(["pipelines"], client_env)
        header, row = listed.stdout.splitlines()
        assert header.split() == ["PIPELINE", "KIND", "AGENTS", "DESCRIPTION"]
        assert row.split()[:2] == ["analysis", "sequential"]
        verbose = run_cli(["run", "analyst", "hi", "-v"], client_env)
        assert verbose.returncode == 0
        assert re.search(r"#1 run_start\n", verbose.stderr)
        assert re.search(
            r"#\d+ agent_event\.text_delta step=analyst agent=analyst replica=analyst@", verbose.stderr
        )
        empty = run_cli(["run", "analyst", "  "], client_env)
        assert (empty.returncode, empty.stderr) == (
            2,
            "meshscope: TEXT is empty: say what the run is about\n",
        )
        nowhere = f"127.0.0.1:{free_port()}"
        gone = run_cli(["run", "analyst", "hi"], {"MESHSCOPE_ORCHESTRATOR": nowhere})
        assert gone.returncode == 1
        assert gone.stderr.startswith(f"meshscope: cannot reach the orchestrator at {nowhere} (")
        assert gone.stderr.rstrip().endswith(
            "Start one (meshscope up, or meshscope serve orchestrator) or point MESHSCOPE_ORCHESTRATOR at one"
        )
        failed = run_cli(["run", "poem", "x"], client_env)
        assert failed.returncode == 1
        assert failed.stderr.startswith("meshscope: NOT_FOUND: no agent or pipeline 'poem'")
        bad_mesh = tmp_path / "bad.yaml"
        bad_mesh.write_text("agents: [analyst]\npipelines:\n  p: {kind: sequential, steps: [nobody]}\n")
        refused = run_cli(["serve", "orchestrator", "-f", str(bad_mesh), "--port", "0"])
        assert refused.returncode == 2
        assert (
            refused.stderr.strip()
            == f"meshscope: {bad_mesh}:3: pipelines.p.steps[0]: unknown agent 'nobody' (agents: analyst)"
        )
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()


async def test_sigkill_of_a_replica_during_200_runs_fails_only_streams_it_had_started(
    start_mesh: StartMesh,
) -> None:
    survivor = start_agents(["--agents", "analyst"])
    victim = start_agents(["--agents", "analyst"])
    try:
        client = await start_mesh([], extra={"analyst": [survivor.address, victim.address]})
        outcomes: list[tuple[bool, list[orchestrator_pb2.RunEvent]]] = []
        started_on_victim = asyncio.Event()

        async def one(i: int) -> None:
            events: list[orchestrator_pb2.RunEvent] = []
            try:
                async for event in client.run("analyst", f"run {i} #slow=20"):
                    events.append(event)
                    if event.replica == f"analyst@{victim.address}" and len(events) > 3:
                        started_on_victim.set()
                outcomes.append((True, events))
            except grpc.aio.AioRpcError:
                outcomes.append((False, events))

        runs = [asyncio.create_task(one(i)) for i in range(200)]
        await asyncio.wait_for(started_on_victim.wait(), 30)
        victim.proc.kill()
        await asyncio.wait_for(asyncio.gather(*runs), 120)
        failed = [events for ok, events in outcomes if not ok]
        assert len(outcomes) == 200
        assert failed, "the kill cut no stream"
        for events in failed:
            assert any(e.HasField("agent_event") for e in events), (
                "a run failed before it had started streaming"
            )
            assert events[-1].HasField("error")
        assert all(events[-1].HasField("run_end") for ok, events in outcomes if ok)
    finally:
        victim.stop()
        survivor.stop()


async def test_orchestrator_shutdown_refuses_new_runs_and_drains_open_ones(start_server: StartServer) -> None:
    agents = await start_server(["analyst"])
    orchestrator = OrchestratorServer(
        parse_mesh(MESH, "test-mesh"),
        StaticWatcher({"analyst": [("127.0.0.1", agents.port)]}),
        OrchestratorSettings(port=0, shutdown_pause_s=1.0, shutdown_grace_s=20),
    )
    await orchestrator.start()
    async with OrchestratorClient(orchestrator.address) as client:
        events: list[orchestrator_pb2.RunEvent] = []
        streaming = asyncio.Event()

        async def consume() -> None:
            async for event in client.run("analyst", "long one #slow=30"):
                events.append(event)
                streaming.set()

        run = asyncio.create_task(consume())
        await asyncio.wait_for(streaming.wait(), 10)
        async with open_channel(orchestrator.address, ChannelSettings()) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            stopping = asyncio.create_task(orchestrator.stop())
            assert (
                await asyncio.wait_for(watch.read(), 5)
            ).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await collect(client, "analyst", "one more")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert declared_reason(refused.value.trailing_metadata()) == common_pb2.ERROR_REASON_DRAINING
        await asyncio.wait_for(run, 30)
        await asyncio.wait_for(stopping, 30)
    assert events[-1].HasField("run_end")


async def test_a_replica_that_drops_out_of_discovery_mid_run_finishes_its_streams(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    agents = await start_server(["analyst"])
    client = await start_mesh([agents], shutdown_pause_s=0)
    orchestrator_pool = _pool_of(client)
    events: list[orchestrator_pb2.RunEvent] = []
    flapped = False
    async for event in client.run("analyst", "long one #slow=20", timeout=30):
        events.append(event)
        if not flapped and event.agent_event.HasField("text_delta"):
            flapped = True
            original = orchestrator_pool.endpoints("analyst")[0]
            orchestrator_pool.update("analyst", [])  # missed a health check...
            orchestrator_pool.update("analyst", [original.instance])  # ...and came back
            back = orchestrator_pool.endpoints("analyst")[0]
            assert back is original  # same channel, its open stream still counted
            assert back.in_flight == 1
            orchestrator_pool.update("analyst", [])  # then left for good: the open stream continues
    assert events[-1].HasField("run_end")
    assert agents.stats.completed == 1


def _pool_of(client: OrchestratorClient) -> EndpointPool:
    return _ORCHESTRATORS[client.target].pool


async def test_a_run_timeout_above_the_default_is_honoured(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    agents = await start_server(["analyst"])
    client = await start_mesh([agents], run_timeout_s=0.3)
    events = await collect(client, "analyst", "take a second #slow=15", timeout=10)
    assert events[-1].HasField("run_end")
    with pytest.raises(grpc.aio.AioRpcError) as default:
        await collect(client, "analyst", "take a second #slow=15")
    assert default.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_router_prefers_a_declared_choice(start_server: StartServer, start_mesh: StartMesh) -> None:
    agents = await start_server(["manager", "researcher", "coder"])
    client = await start_mesh([agents])
    events = await collect(client, "triage", "hand it over #route=not the writer but the coder please")
    assert [e.step for e in events if e.agent_event.HasField("reply_start")] == ["route", "coder"]


async def test_the_triage_pipeline_routes_offline_and_the_same_request_the_same_way(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    agents = await start_server(["manager", "researcher", "coder"])
    client = await start_mesh([agents])

    def routed(events: list[orchestrator_pb2.RunEvent]) -> list[str]:
        return [e.step for e in events if e.agent_event.HasField("reply_start")]

    assert routed(await collect(client, "triage", "the coder should write this function")) == [
        "route",
        "coder",
    ]
    assert routed(await collect(client, "triage", "ask the researcher about HTTP")) == ["route", "researcher"]
    first = routed(await collect(client, "triage", "what is the history of the web?"))
    assert first[0] == "route" and first[1] in ("researcher", "coder")
    assert routed(await collect(client, "triage", "what is the history of the web?")) == first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "agents: [a, b]\npipelines:\n  p: {kind: fanout, agents: [a, a]}\n",
            "m.yaml:3: pipelines.p.agents[1]: 'a' is listed twice",
        ),
        (
            "agents: [a]\npipeline:\n  p: {kind: sequential, steps: [a]}\n",
            "m.yaml:2: pipeline: unknown section",
        ),
        (
            "agents:\n  a: {modle: scripted}\n",
            "m.yaml:2: agents.a.modle: unknown field (allowed: model, replicas, process)",
        ),
        ("agents:\n  a: {replicas: 0}\n", "m.yaml:2: agents.a.replicas: must be a whole number 1-64"),
        (
            "agents:\n  a: {process: p, replicas: 2}\n  b: {process: p}\n",
            "m.yaml:3: agents.b.replicas: agents sharing process 'p' must have the same replicas (a: 2)",
        ),
        ("agents: [a]\nup: {redis: yes please}\n", "m.yaml:2: up.redis: must be true or false"),
        ("agents: [a]\nup:\n  ports: {bridge: 70000}\n", "m.yaml:3: up.ports.bridge: must be a port 1-65535"),
        (
            "agents: [a]\nup:\n  ports: {web: 1}\n",
            "m.yaml:3: up.ports.web: unknown port (allowed: consul, redis",
        ),
    ],
)
def test_more_mesh_file_errors(text: str, message: str) -> None:
    with pytest.raises(PipelineError) as error:
        parse_mesh(text, "m.yaml")
    assert str(error.value).startswith(message), str(error.value)


async def test_an_agents_own_unavailable_is_not_blamed_on_the_replica(
    start_server: StartServer, start_mesh: StartMesh
) -> None:
    from meshscope.services.runtime.redis_store import RedisSessionStore
    from meshscope.services.runtime.stores import StoreSettings

    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    replicas = [
        await start_server(
            ["writer"], store=RedisSessionStore(StoreSettings(redis_url=dead_url, connect_timeout_s=1))
        )
        for _ in range(2)
    ]
    client = await start_mesh(replicas)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await collect(client, "writer", "hello", session_id="s")
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "session store unreachable" in str(failure.value.details())
    # The agent's reason is what the decision read, and it is passed on to the caller.
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_STORE_UNAVAILABLE
    for endpoint in _pool_of(client).endpoints("writer"):
        assert endpoint.health(time.monotonic()) == "passing"  # not ejected: the store is the problem
    # Not retried on the other replica, which shares the same store and its trouble.
    assert sum(replica.stats.started for replica in replicas) == 1


async def test_a_draining_replica_is_passed_over_and_ejected(start_server: StartServer) -> None:
    """DRAINING says the replica is going away: the step goes to another replica, and the
    draining one leaves the rotation (unlike STORE_BUSY, which ejects nobody)."""
    draining = await start_server(["echo"], shutdown_pause_s=3, shutdown_grace_s=1)
    good = await start_server(["echo"])
    pool = EndpointPool()
    pool.update(
        "echo", [Instance("echo", f"echo@{s.address}", "127.0.0.1", s.port) for s in (draining, good)]
    )
    by_port = {e.instance.port: e for e in pool.endpoints("echo")}
    for _ in range(3):  # the good replica looks loaded, so power-of-two-choices tries the draining one first
        pool.stream_started(by_port[good.port])
    stopping = asyncio.create_task(draining.stop())  # refuses new turns during its 3 s pause
    try:
        await wait_for(
            lambda: health_status(draining.address, "echo"), lambda s: s == "NOT_SERVING", timeout=5
        )
        request = agent_pb2.InvokeRequest(agent="echo", input=user_message("hello"))
        events = [e async for e in stream_step(pool, request, deadline=time.monotonic() + 30, attempts=2)]
    finally:
        await stopping
        await pool.close()
    assert {e.endpoint.instance.port for e in events} == {good.port}
    assert events[-1].head.WhichOneof("kind") == "reply_end"
    now = time.monotonic()
    assert not by_port[draining.port].available(now)  # ejected
    assert by_port[good.port].available(now)


async def test_power_of_two_choices_prefers_the_less_loaded_replica() -> None:
    pool = EndpointPool()
    instances = [Instance("echo", f"echo@h:{p}", "127.0.0.1", p) for p in (1, 2, 3)]
    pool.update("echo", instances)
    idle, busy_one, busy_two = pool.endpoints("echo")
    busy_one.in_flight = busy_two.in_flight = 10
    picks = Counter(pool.pick("echo").replica_id for _ in range(600))
    # Uniform picking would choose the idle replica ~200 times; P2C whenever it is drawn (~400).
    assert picks[idle.replica_id] > 330, picks
    pool.eject(idle)
    assert all(pool.pick("echo") is not idle for _ in range(50))
    await pool.close()


async def test_a_run_still_open_at_the_end_of_the_grace_gets_an_error_event(
    start_server: StartServer,
) -> None:
    agents = await start_server(["analyst"])
    orchestrator = OrchestratorServer(
        parse_mesh(MESH, "test-mesh"),
        StaticWatcher({"analyst": [("127.0.0.1", agents.port)]}),
        OrchestratorSettings(port=0, shutdown_pause_s=0, shutdown_grace_s=1),
    )
    await orchestrator.start()
    events: list[orchestrator_pb2.RunEvent] = []
    async with OrchestratorClient(orchestrator.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            # 200 words at 50 ms: 10 s, far beyond the 1 s grace.
            async for event in client.run("analyst", "very long #slow=200"):
                events.append(event)
                if len(events) == 5:
                    stopping = asyncio.create_task(orchestrator.stop())
        await asyncio.wait_for(stopping, 10)
    assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the run was cut off after the 1s grace period" in str(cut.value.details())
    assert events[-1].HasField("error"), events[-1]
    assert events[-1].error.code == "UNAVAILABLE" and events[-1].error.retryable
    assert events[-1].error.reason == common_pb2.ERROR_REASON_CUT_OFF
    assert declared_reason(cut.value.trailing_metadata()) == common_pb2.ERROR_REASON_CUT_OFF

    # The agent's turn was cancelled with the run, not left running.
    async def in_flight() -> int:
        return agents.stats.in_flight

    await wait_for(in_flight, lambda n: n == 0, timeout=5)
