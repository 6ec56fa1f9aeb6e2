"""Transport security with real TLS and real processes: mutual TLS, the mesh token, refusals.

Certificates come from a throw-away CA (`meshscope.testing.TestCA`); nothing is mocked: the
servers are the agent service and the orchestrator, the callers their clients and the CLI.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from meshscope.auth import MISSING, WRONG
from meshscope.channels import ChannelSettings, open_channel
from meshscope.config import Config
from meshscope.security import Security
from meshscope.services.runtime.client import AgentClient
from meshscope.testing import ConsulDevAgent, TestCA, health_status, wait_for
from meshscope.v1 import common_pb2
from meshscope.wire import declared_reason
from tests.conftest import StartServer
from tests.support import run_cli, start_agents, start_orchestrator

pytestmark = pytest.mark.integration

TOKEN = "mesh-token-for-tests-0123456789"
MESH = "agents: [analyst, writer]\npipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n"


def security(env: Mapping[str, str], *, serving: bool = False) -> Security:
    """What a process with `env` would use, read the way every meshscope process reads it."""
    return Security.from_config(Config(env), serving=serving)


def channels(env: Mapping[str, str]) -> ChannelSettings:
    return ChannelSettings(security=security(env))


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "pki")


async def test_an_agent_with_mutual_tls_answers_a_caller_with_a_client_certificate(
    start_server: StartServer, ca: TestCA
) -> None:
    served = security(ca.server_env(ca.issue("agent"), require_client_auth=True), serving=True)
    server = await start_server(["analyst"], security=served)
    caller = channels(ca.client_env(ca.issue("caller", client=True)))
    async with AgentClient(server.address, settings=caller) as client:
        reply = await client.reply("analyst", "hello over TLS", session_id="tls")
    assert reply.text.startswith("analyst: turn 1. You said: hello over TLS")
    assert await health_status(server.address, "analyst", settings=caller) == "SERVING"


async def test_a_caller_without_a_client_certificate_fails_the_handshake(
    start_server: StartServer, ca: TestCA
) -> None:
    served = security(ca.server_env(ca.issue("agent"), require_client_auth=True), serving=True)
    server = await start_server(["analyst"], security=served)
    other_ca = TestCA(ca.folder / "other")
    for label, caller in (
        ("TLS, no client certificate", channels(ca.client_env())),
        (
            "a client certificate of another CA",
            channels(ca.client_env(other_ca.issue("stranger", client=True))),
        ),
        ("plaintext", ChannelSettings()),
    ):
        async with AgentClient(server.address, settings=caller) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.reply("analyst", "let me in", timeout=10)
        # What gRPC gives for a failed handshake: the transport's UNAVAILABLE, with no reason
        # declared (no meshscope service ever saw the call).
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, label
        assert declared_reason(refused.value.trailing_metadata()) is None, label
    assert server.stats.completed == 0


async def test_a_server_certificate_of_another_ca_is_refused_by_the_caller(
    start_server: StartServer, ca: TestCA
) -> None:
    other_ca = TestCA(ca.folder / "other")
    server = await start_server(
        ["analyst"], security=security(other_ca.server_env(other_ca.issue("agent")), serving=True)
    )
    async with AgentClient(server.address, settings=channels(ca.client_env())) as client:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.reply("analyst", "who are you?", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.stats.completed == 0


async def test_without_the_token_or_with_a_wrong_one_a_call_is_unauthenticated(
    start_server: StartServer,
) -> None:
    server = await start_server(["analyst"], security=Security(token=TOKEN))
    async with AgentClient(
        server.address, settings=ChannelSettings(security=Security(token=TOKEN))
    ) as client:
        assert (await client.reply("analyst", "hello", session_id="t")).text.startswith("analyst: turn 1.")
    for label, token, message in (("no token", None, MISSING), ("a wrong token", TOKEN[:-1] + "X", WRONG)):
        caller = ChannelSettings(security=Security(token=token))
        async with AgentClient(server.address, settings=caller) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.reply("analyst", "hello", session_id="t")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, label
            assert refused.value.details() == message, label
            assert (
                declared_reason(refused.value.trailing_metadata()) == common_pb2.ERROR_REASON_UNAUTHENTICATED
            )
            # GetCard and the session API are the same: every method but health needs the token.
            with pytest.raises(grpc.aio.AioRpcError) as card:
                await client.get_card("analyst")
            assert card.value.code() == grpc.StatusCode.UNAUTHENTICATED, label
    assert server.stats.completed == 1


async def test_health_stays_open_and_reflection_needs_the_token(start_server: StartServer) -> None:
    server = await start_server(["analyst"], security=Security(token=TOKEN))
    assert await health_status(server.address, "analyst") == "SERVING"  # no token: probes work

    async def list_services(settings: ChannelSettings) -> list[str]:
        async with open_channel(server.address, settings) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
                return [s.name for s in response.list_services_response.service]
        return []

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await list_services(ChannelSettings())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "meshscope.v1.AgentService" in await list_services(ChannelSettings(security=Security(token=TOKEN)))


def test_the_cli_runs_a_pipeline_through_an_orchestrator_and_agents_with_mutual_tls_and_a_token(
    tmp_path: Path, ca: TestCA
) -> None:
    """Every hop authenticated both ways: CLI -> orchestrator -> agents, each with its own certificate."""
    token = {"MESHSCOPE_MESH_TOKEN": TOKEN}
    agents = start_agents(
        ["--agents", "analyst,writer"],
        {**ca.server_env(ca.issue("agents"), require_client_auth=True), **token},
    )
    orchestrator = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml",
            MESH,
            {"analyst": agents.address, "writer": agents.address},
            env={
                **ca.server_env(ca.issue("orchestrator"), require_client_auth=True),
                **ca.client_env(ca.issue("orchestrator-client", client=True)),
                **token,
            },
        )
        cli = {"MESHSCOPE_ORCHESTRATOR": orchestrator.address, **ca.client_env(ca.issue("cli", client=True))}
        result = run_cli(["run", "analysis", "Compare gRPC and REST", "--session", "tls"], {**cli, **token})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        # Each step under its agent and the replica that served it.
        assert re.match(
            r"\[analyst @ analyst@127\.0\.0\.1:\d+\] analyst: turn 1\. You said: Compare gRPC", lines[0]
        )
        assert re.match(r"\[writer @ writer@127\.0\.0\.1:\d+\] writer: turn 1\.", lines[1])
        assert "2 step(s)" in lines[-1]

        no_token = run_cli(["run", "analysis", "hello"], cli)
        assert no_token.returncode == 1
        assert no_token.stderr.strip().splitlines()[-1] == f"meshscope: UNAUTHENTICATED: {MISSING}"

        no_certificate = run_cli(
            ["run", "analysis", "hello"],
            {"MESHSCOPE_ORCHESTRATOR": orchestrator.address, **ca.client_env(), **token},
        )
        assert no_certificate.returncode == 1
        assert (
            no_certificate.stderr.strip()
            .splitlines()[-1]
            .startswith(f"meshscope: cannot reach the orchestrator at {orchestrator.address} (")
        )
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()


def test_an_orchestrator_with_the_wrong_token_gets_the_agents_unauthenticated_relayed(
    tmp_path: Path,
) -> None:
    agents = start_agents(["--agents", "analyst,writer"], {"MESHSCOPE_MESH_TOKEN": TOKEN})
    orchestrator = None
    try:
        wrong = TOKEN[:-1] + "X"
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml",
            MESH,
            {"analyst": agents.address, "writer": agents.address},
            env={"MESHSCOPE_MESH_TOKEN": wrong},
        )
        result = run_cli(
            ["run", "analyst", "hello"],
            {"MESHSCOPE_ORCHESTRATOR": orchestrator.address, "MESHSCOPE_MESH_TOKEN": wrong},
        )
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        # The run had begun (run_start), so the failure arrives as its error event.
        assert last.startswith("meshscope: run failed: UNAUTHENTICATED: agent 'analyst' on analyst@"), last
        assert last.endswith(WRONG), last
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()


async def test_a_tls_agent_passes_consuls_grpc_check_over_tls(consul: ConsulDevAgent, ca: TestCA) -> None:
    """Consul 1.8 checks a TLS replica over TLS (GRPCUseTLS): without it the check fails, and the
    replica would never be routed to."""
    agents = start_agents(["--agents", "analyst"], {**consul.env(), **ca.server_env(ca.issue("agent"))})
    try:
        replica = f"analyst@{agents.address}"
        passing = await wait_for(
            lambda: asyncio.to_thread(consul.passing, "analyst"), lambda ids: ids == [replica], timeout=10
        )
        assert passing == [replica]
    finally:
        agents.stop()


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (
            ["serve", "agents", "--agents", "analyst"],
            {"MESHSCOPE_TLS_CERT_FILE": "{pki}/agent.pem"},
            "meshscope: MESHSCOPE_TLS_KEY_FILE is not set: MESHSCOPE_TLS_CERT_FILE needs its private key",
        ),
        (
            ["serve", "agents", "--agents", "analyst"],
            {"MESHSCOPE_TLS_CERT_FILE": "{pki}/agent.pem", "MESHSCOPE_TLS_KEY_FILE": "{pki}/missing.pem"},
            "meshscope: MESHSCOPE_TLS_KEY_FILE='{pki}/missing.pem': "
            "cannot read it (No such file or directory)",
        ),
        (
            ["serve", "orchestrator", "-f", "mesh.yaml"],
            {"MESHSCOPE_TLS_CA_FILE": "{pki}/ca.pem"},
            "meshscope: MESHSCOPE_TLS_CERT_FILE is not set: with MESHSCOPE_TLS_CA_FILE this process's "
            "channels use TLS, and its server needs a certificate and key to serve TLS too",
        ),
        (
            ["run", "analyst", "hello"],
            {
                "MESHSCOPE_TLS_CLIENT_CERT_FILE": "{pki}/agent.pem",
                "MESHSCOPE_TLS_CLIENT_KEY_FILE": "{pki}/agent-key.pem",
            },
            "meshscope: MESHSCOPE_TLS_CA_FILE is not set: MESHSCOPE_TLS_CLIENT_CERT_FILE is for "
            "TLS channels, which need the CA that verifies servers",
        ),
        (
            ["serve", "agents", "--agents", "analyst"],
            {"MESHSCOPE_MESH_TOKEN": "hunter2"},
            "meshscope: MESHSCOPE_MESH_TOKEN is not valid: expected 16-4096 characters, got 7",
        ),
    ],
)
def test_a_half_configured_process_exits_2_with_one_line_naming_the_variable(
    ca: TestCA, command: list[str], env: dict[str, str], message: str
) -> None:
    ca.issue("agent")
    pki = str(ca.folder)
    result = run_cli(command, {name: value.format(pki=pki) for name, value in env.items()})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [message.format(pki=pki)]
    assert "hunter2" not in result.stderr
