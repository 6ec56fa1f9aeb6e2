"""The orchestrator under bursts and health flaps (issue 5/13, faults 5-7), against real servers.

gRPC's server holds at most 1000 new calls its application has not taken yet
(`grpc.server.max_pending_requests`); past that it cancels new ones at random,
all of them at 3000. 1,500 streams opened at once cross it on two cores:
a bare `grpc.aio` server cancels ~60 of them with nothing streamed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2

from meshscope.discovery.config import ConsulSettings, DiscoverySettings
from meshscope.discovery.model import Instance, replica_id_for
from meshscope.discovery.watcher import ConsulWatcher, StaticWatcher
from meshscope.orchestrator.calls import StepFailed, stream_step
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.orchestrator.config import OrchestratorConfigError, OrchestratorSettings
from meshscope.orchestrator.pipelines import parse_mesh
from meshscope.orchestrator.pool import EndpointPool
from meshscope.orchestrator.service import OrchestratorServer
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.registration import register_server
from meshscope.services.runtime.server import AgentServer
from meshscope.testing import ConsulDevAgent, wait_for
from meshscope.v1 import agent_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import user_message
from tests.conftest import StartServer

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BURST = 1500
"""Concurrent streams: half again gRPC's default server backlog of 1000."""


@pytest.fixture
async def echo(start_server: StartServer) -> AgentServer:
    return await start_server(["echo"])


@pytest.fixture
async def orchestrator(echo: AgentServer) -> AsyncIterator[OrchestratorServer]:
    server = OrchestratorServer(
        parse_mesh("agents: [echo]\n", "test-mesh"),
        StaticWatcher({"echo": [("127.0.0.1", echo.port)]}),
        OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0),
    )
    await server.start()
    yield server
    await server.stop()


async def _outcome(events: AsyncIterator[object]) -> str:
    """ "ok", or the status and how many events came first."""
    seen = 0
    try:
        async for _ in events:
            seen += 1
    except grpc.aio.AioRpcError as error:
        return f"{error.code().name} after {seen} event(s): {error.details()}"
    except StepFailed as failure:
        return f"{failure.code.name} after {seen} event(s): {failure.message}"
    return "ok"


async def test_1500_concurrent_runs_through_one_orchestrator_all_succeed(
    echo: AgentServer, orchestrator: OrchestratorServer
) -> None:
    async with OrchestratorClient(orchestrator.address) as client:
        outcomes = await asyncio.gather(
            *(_outcome(client.run("echo", f"hello {i}", timeout=60)) for i in range(BURST))
        )
    assert Counter(outcomes) == {"ok": BURST}
    assert echo.stats.completed == BURST


async def test_1500_concurrent_calls_straight_to_an_agent_server_all_succeed(echo: AgentServer) -> None:
    """Any client (the CLI, a bridge, several orchestrators) may open a burst of calls on an
    agent server: its backlog is raised past gRPC's default too, so none is cancelled."""
    async with AgentClient(echo.address) as client:
        outcomes = Counter(
            await asyncio.gather(*(_outcome(client.invoke("echo", f"hello {i}")) for i in range(BURST)))
        )
    assert outcomes == {"ok": BURST}


async def _burst(pool: EndpointPool, *, attempts: int) -> Counter[str]:
    def request(i: int) -> agent_pb2.InvokeRequest:
        return agent_pb2.InvokeRequest(agent="echo", input=user_message(f"hello {i}"))

    deadline = time.monotonic() + 60
    return Counter(
        await asyncio.gather(
            *(
                _outcome(stream_step(pool, request(i), deadline=deadline, attempts=attempts))
                for i in range(BURST)
            )
        )
    )


def _pool_for(server: AgentServer, **options: int) -> EndpointPool:
    pool = EndpointPool(**options)  # type: ignore[arg-type]
    replica = replica_id_for("echo", "127.0.0.1", server.port)
    pool.update("echo", [Instance("echo", replica, "127.0.0.1", server.port)])
    return pool


async def test_streams_the_transport_cancels_before_their_first_event_are_retried(
    echo: AgentServer,
) -> None:
    # No bound on pending streams: the agent server's backlog overflows, and its
    # gRPC cancels some calls before the agent sees them. Those are retried.
    pool = _pool_for(echo, max_pending_streams=1_000_000)
    try:
        assert await _burst(pool, attempts=3) == {"ok": BURST}
        # A full backlog is not a broken replica: it was never ejected.
        assert [e.health(0.0) for e in pool.endpoints("echo")] == ["passing"]
    finally:
        await pool.close()


async def test_pending_streams_per_replica_are_bounded_below_the_servers_backlog(
    echo: AgentServer,
) -> None:
    # No retries at all: with at most 500 streams waiting for their first event,
    # the agent server's backlog of 1000 is never reached.
    pool = _pool_for(echo)
    try:
        assert await _burst(pool, attempts=1) == {"ok": BURST}
    finally:
        await pool.close()


# --- Fault 6: a health flap must not empty the pool ------------------------------------------


def _instance(port: int) -> Instance:
    return Instance("echo", replica_id_for("echo", "127.0.0.1", port), "127.0.0.1", port)


async def _has_replicas(pool: EndpointPool) -> bool:
    return pool.has_replicas("echo")


async def test_every_replica_leaving_at_once_starts_a_panic_that_a_returning_one_ends() -> None:
    pool = EndpointPool(panic_grace_s=0.5)
    try:
        pool.update("echo", [_instance(1), _instance(2)])
        pool.update("echo", [])  # every check failed at once
        assert [e.health(time.monotonic()) for e in pool.endpoints("echo")] == ["panic", "panic"]
        assert pool.pick("echo").instance.port in (1, 2)  # still routed to
        pool.update("echo", [_instance(2)])  # one passes again: the panic is over
        assert [(e.instance.port, e.health(time.monotonic())) for e in pool.endpoints("echo")] == [
            (2, "passing")
        ]
        pool.update("echo", [])
        started = time.monotonic()
        await wait_for(lambda: _has_replicas(pool), lambda has: not has, timeout=5)
        assert time.monotonic() - started >= 0.45  # kept for the grace, then dropped
        assert pool.endpoints("echo") == []
    finally:
        await pool.close()


async def test_replicas_failing_their_checks_one_by_one_within_the_grace_all_join_the_panic() -> None:
    """Consul checks each replica on its own timer: "at once" arrives as one leaving, then the other."""
    pool = EndpointPool(panic_grace_s=5)
    try:
        pool.update("echo", [_instance(1), _instance(2)])
        pool.update("echo", [_instance(2)])  # replica 1's check failed first
        pool.update("echo", [])  # then replica 2's
        assert [(e.instance.port, e.health(time.monotonic())) for e in pool.endpoints("echo")] == [
            (1, "panic"),
            (2, "panic"),
        ]
    finally:
        await pool.close()


async def test_without_a_panic_grace_an_empty_set_empties_the_pool() -> None:
    pool = EndpointPool(panic_grace_s=0)
    try:
        pool.update("echo", [_instance(1)])
        pool.update("echo", [])
        assert not pool.has_replicas("echo")
    finally:
        await pool.close()


async def test_a_run_during_the_panic_on_a_replica_that_is_really_gone_fails_at_once(
    echo: AgentServer, orchestrator: OrchestratorServer
) -> None:
    # The last replica shuts down cleanly: it deregisters, so discovery reports the
    # agent empty, which looks like a flap. Runs in the grace must not hang on it.
    await echo.stop()
    orchestrator.pool.update("echo", [])
    assert orchestrator.pool.has_replicas("echo")
    async with OrchestratorClient(orchestrator.address) as client:
        started = time.monotonic()
        outcome = await _outcome(client.run("echo", "anyone there?", timeout=30))
    # run_start, then the error event: the refused connection ejected the replica.
    assert outcome.startswith("UNAVAILABLE after 2 event(s): agent 'echo' on echo@"), outcome
    assert "Connection refused" in outcome
    assert time.monotonic() - started < 5
    assert [e.health(time.monotonic()) for e in orchestrator.pool.endpoints("echo")] == ["ejected"]


async def _echo_health(client: OrchestratorClient) -> list[str]:
    listed = await client.list_agents()
    return [r.health for a in listed.agents if a.name == "echo" for r in a.replicas]


async def test_when_every_replica_fails_its_consul_check_at_once_runs_still_get_routed(
    consul: ConsulDevAgent, start_server: StartServer
) -> None:
    settings = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": consul.http_addr})
    discovery = DiscoverySettings(backend="consul", consul=settings)
    replicas = [await start_server(["echo"]) for _ in range(2)]
    for replica in replicas:
        await register_server(replica, discovery)
    grace = 4.0
    orchestrator = OrchestratorServer(
        parse_mesh("agents: [echo]\n", "test-mesh"),
        ConsulWatcher(settings),
        OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0, panic_grace_s=grace),
    )
    await orchestrator.start()

    async def serving(replica: AgentServer, status: int) -> None:
        await replica.health.set("echo", status)  # what Consul's gRPC check asks for

    try:
        async with OrchestratorClient(orchestrator.address) as client:
            await wait_for(lambda: _echo_health(client), lambda h: h == ["passing"] * 2, timeout=15)
            # Both replicas fail their checks together (a loaded machine), though they serve.
            for replica in replicas:
                await serving(replica, NOT_SERVING)
            # Consul runs each check on its own schedule, so they drop out one by one
            # within an interval: every one that left within the grace is kept.
            await wait_for(lambda: _echo_health(client), lambda h: h == ["panic", "panic"], timeout=10)
            assert await _outcome(client.run("echo", "still routed?", timeout=10)) == "ok"
            # One passes again: the panic ends, and only that one is routed to.
            await serving(replicas[0], SERVING)
            await wait_for(lambda: _echo_health(client), lambda h: h == ["passing"], timeout=10)
            # All fail again, and none comes back: after the grace the agent is gone.
            await serving(replicas[0], NOT_SERVING)
            # (the other one joins this panic too if it left less than the grace ago)
            await wait_for(
                lambda: _echo_health(client), lambda h: bool(h) and set(h) == {"panic"}, timeout=10
            )
            panicked = time.monotonic()
            await wait_for(lambda: _echo_health(client), lambda h: h == [], timeout=grace + 5)
            assert time.monotonic() - panicked >= grace - 1.5  # the listing is polled, not exact
            outcome = await _outcome(client.run("echo", "anyone?", timeout=10))
            assert outcome == "UNAVAILABLE after 0 event(s): agent 'echo' has no healthy replica"
    finally:
        await orchestrator.stop()


# --- Fault 7: invalid Durations, and tracebacks only for our own bugs --------------------------


@pytest.mark.parametrize(
    ("seconds", "nanos", "problem"),
    [
        (5, -1, "Duration is not valid: Sign mismatch."),
        (-1, 500_000_000, "must be positive and at most 2147483647 seconds"),
        (
            1,
            1_000_000_000,
            "Duration is not valid: Nanos 1000000000 must be in range [-999999999, 999999999].",
        ),
    ],
)
async def test_a_run_timeout_that_is_not_a_valid_duration_is_refused(
    orchestrator: OrchestratorServer, seconds: int, nanos: int, problem: str
) -> None:
    request = orchestrator_pb2.RunRequest(target="echo", input=user_message("hi"))
    request.timeout.seconds, request.timeout.nanos = seconds, nanos
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        call = orchestrator_pb2_grpc.OrchestratorStub(channel).Run(request, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == f"timeout: {problem}"


async def test_an_agents_internal_error_is_logged_in_one_line_without_a_traceback(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    agents = await start_server(["analyst"])
    orchestrator = OrchestratorServer(
        parse_mesh("agents: [analyst]\n", "test-mesh"),
        StaticWatcher({"analyst": [("127.0.0.1", agents.port)]}),
        OrchestratorSettings(port=0, shutdown_grace_s=1, shutdown_pause_s=0),
    )
    await orchestrator.start()
    try:
        caplog.set_level(logging.INFO, logger="meshscope")
        async with OrchestratorClient(orchestrator.address) as client:
            outcome = await _outcome(client.run("analyst", "break please #fail", timeout=10))
        assert outcome.startswith("INTERNAL after"), outcome
        assert outcome.endswith("scripted model failure requested by #fail"), outcome
        mine = [r for r in caplog.records if r.name == "meshscope.orchestrator"]
        assert [r.exc_info for r in mine] == [None]
        assert mine[0].levelname == "WARNING"
        assert "scripted model failure requested by #fail" in mine[0].getMessage()
    finally:
        await orchestrator.stop()


def test_the_new_knobs_are_read_and_bounded() -> None:
    settings = OrchestratorSettings.from_env(
        {
            "MESHSCOPE_PANIC_GRACE_S": "2.5",
            "MESHSCOPE_MAX_PENDING_STREAMS": "64",
            "MESHSCOPE_GRPC_MAX_PENDING_REQUESTS": "5000",
        }
    )
    assert (settings.panic_grace_s, settings.max_pending_streams) == (2.5, 64)
    options = dict(settings.server_options())
    assert options["grpc.server.max_pending_requests"] == 5000
    assert options["grpc.server.max_pending_requests_hard_limit"] == 15000
    assert "grpc.server.max_pending_requests" not in dict(settings.channel_options())
    for name, value in (
        ("MESHSCOPE_PANIC_GRACE_S", "-1"),
        ("MESHSCOPE_MAX_PENDING_STREAMS", "0"),
        ("MESHSCOPE_GRPC_MAX_PENDING_REQUESTS", "2000000000"),
    ):
        with pytest.raises(OrchestratorConfigError) as bad:
            OrchestratorSettings.from_env({name: value})
        assert str(bad.value).startswith(f"{name}={value!r} is not valid"), str(bad.value)
