"""Fixtures: real gRPC agent servers on loopback ephemeral ports.

MESHSCOPE_TEST_EVENT_LOOP=uvloop runs every async test, and the in-process servers it starts, on
uvloop (the loop `meshscope serve` picks when uvloop is installed); unset, asyncio's own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from meshscope.services.catalog import load_definition
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.definition import AgentDefinition
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.models import parse_model_spec
from meshscope.services.runtime.server import AgentServer
from meshscope.services.runtime.state import SessionStore
from meshscope.testing import ConsulDevAgent, RedisDevServer

StartServer = Callable[..., Awaitable[AgentServer]]

if os.environ.get("MESHSCOPE_TEST_EVENT_LOOP") == "uvloop":
    import asyncio

    import uvloop

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        """pytest-asyncio's hook: every async test on uvloop."""
        return {"uvloop": uvloop.new_event_loop}


def hosted(definition: AgentDefinition | str, model: str = "scripted") -> HostedAgent:
    """A hosted agent from a definition or a shipped agent's name."""
    d = load_definition(definition) if isinstance(definition, str) else definition
    return HostedAgent(d, parse_model_spec(model) if d.needs_model else None)


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start in-process agent servers on 127.0.0.1:0; all are stopped after the test."""
    servers: list[AgentServer] = []

    async def start(
        agents: Sequence[HostedAgent | str],
        *,
        store: SessionStore | None = None,
        lock_ttl_s: float = 30.0,
        lock_wait_s: float = 0.0,
        **settings: object,
    ) -> AgentServer:
        config = ServerSettings(port=0, shutdown_pause_s=0, shutdown_grace_s=5).with_overrides(**settings)
        server = AgentServer(
            [a if isinstance(a, HostedAgent) else hosted(a) for a in agents],
            config,
            store,
            lock_ttl_s=lock_ttl_s,
            lock_wait_s=lock_wait_s,
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def analyst_writer(start_server: StartServer) -> AgentServer:
    """One process hosting the analyst and the writer (seed mode 1)."""
    return await start_server(["analyst", "writer"])


@pytest.fixture
async def client(analyst_writer: AgentServer) -> AsyncIterator[AgentClient]:
    async with AgentClient(analyst_writer.address) as c:
        yield c


@pytest.fixture
def consul(tmp_path: Path) -> Iterator[ConsulDevAgent]:
    """A fresh Consul dev agent for one test."""
    agent = ConsulDevAgent(tmp_path)
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisDevServer]:
    """A fresh redis-server (AOF on) for one test."""
    server = RedisDevServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
