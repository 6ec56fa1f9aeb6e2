"""The agent-service process: one `grpc.aio` server hosting one or more agents.

It serves `AgentService`, the standard `grpc.health.v1` health service (one
status per agent name, plus "" and the service name) and server reflection.
Shutdown (docs/operations.md, "Stopping"): NOT_SERVING -> before-drain hooks (discovery
deregisters here) -> a short pause so health watchers drop this replica ->
drain in-flight streams within the grace period -> stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from meshscope.discovery.addresses import bind_insecure, host_port
from meshscope.servicers import add_servicer
from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.errors import CutOff
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.servicer import AgentServicer
from meshscope.services.runtime.state import InMemorySessionStore, SessionStore
from meshscope.services.runtime.turn import TurnRunner, TurnStats
from meshscope.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger("meshscope.server")

INTERRUPT_BEFORE_S = 0.5
"""Running turns are ended this long before the grace period runs out, leaving time for
their error events to reach the callers before gRPC cancels the calls."""

AGENT_SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
Hook = Callable[[], Awaitable[None]]


class AgentServer:
    """Hosts agents on one port; start, then stop gracefully."""

    def __init__(
        self,
        agents: Sequence[HostedAgent],
        settings: ServerSettings | None = None,
        store: SessionStore | None = None,
        *,
        lock_ttl_s: float = 30.0,
        lock_wait_s: float = 0.0,
    ) -> None:
        if not agents:
            raise ValueError("an agent server needs at least one agent")
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        self.agents = {a.name: a for a in agents}
        self.settings = settings or ServerSettings()
        self.store = store or InMemorySessionStore()
        self.runner = TurnRunner(
            self.store,
            lock_ttl_s=lock_ttl_s,
            lock_wait_s=lock_wait_s,
            max_event_bytes=self.settings.max_message_bytes,
        )
        self.health = HealthServicer()
        self.port = 0
        self._draining = False
        self._before_drain: list[Hook] = []
        self._stopped = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._server: grpc.aio.Server | None = None

    @property
    def stats(self) -> TurnStats:
        return self.runner.stats

    @property
    def address(self) -> str:
        return host_port(self.settings.host, self.port)

    def add_before_drain(self, hook: Hook) -> None:
        """Run `hook` after NOT_SERVING and before the pause (e.g. deregister)."""
        self._before_drain.append(hook)

    def _build_server(self) -> grpc.aio.Server:
        # grpc.aio binds a server to the running loop, so it is built in start().
        server = grpc.aio.server(options=self.settings.grpc_options())
        add_servicer(
            server,
            agent_pb2_grpc.add_AgentServiceServicer_to_server,
            AgentServicer(
                self.agents,
                self.runner,
                lambda: self._draining,
                max_message_bytes=self.settings.max_message_bytes,
            ),
        )
        add_servicer(server, health_pb2_grpc.add_HealthServicer_to_server, self.health)
        reflection.enable_server_reflection(
            (
                AGENT_SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        return server

    async def start(self) -> None:
        """Bind, serve and mark every hosted agent SERVING."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = self._build_server()
        self.port = bind_insecure(self._server, self.settings.host, self.settings.port)
        await self._server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for name in ("", AGENT_SERVICE_NAME, *self.agents):
            await self.health.set(name, serving)
        log.info("serving %s on %s", ", ".join(self.agents), self.address)

    async def stop(self) -> None:
        """Graceful shutdown; concurrent callers all wait for the same one."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stop_task)

    async def _shutdown(self) -> None:
        self._draining = True
        await self.health.enter_graceful_shutdown()
        for hook in self._before_drain:
            try:
                await hook()
            except Exception as exc:
                log.warning("shutdown hook failed: %s", exc)
        if self.settings.shutdown_pause_s:
            await asyncio.sleep(self.settings.shutdown_pause_s)
        log.info(
            "draining %d in-flight turn(s), grace %.1fs", self.stats.in_flight, self.settings.shutdown_grace_s
        )
        if self._server is not None:
            grace = self.settings.shutdown_grace_s
            stopping = asyncio.ensure_future(self._server.stop(grace))
            # Shortly before gRPC would cancel what is still running, end those turns
            # ourselves, so their callers get an error event and a status saying why.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runner.idle.wait(), max(grace - INTERRUPT_BEFORE_S, grace / 2))
            if not self.runner.idle.is_set():
                cut = self.runner.interrupt(
                    CutOff(
                        "agent service is shutting down: the turn was cut off "
                        f"after the {grace:g}s grace period"
                    )
                )
                log.warning("cutting off %d turn(s) still running at the end of the grace period", cut)
            await stopping
        # Turns cancelled at the end of the grace still save in their `finally`:
        # let them finish before the store's connections close.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.runner.idle.wait(), 5)
        await self.runner.close()
        await self.store.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def serve_until_signal(
    server: AgentServer,
    announce: Callable[[str], None] = print,
    on_started: Callable[[AgentServer], Awaitable[object]] | None = None,
) -> None:
    """Start, run `on_started` (e.g. register), announce, and stop gracefully on SIGTERM/SIGINT."""
    await server.start()
    if on_started is not None:
        await on_started(server)
    announce(f"meshscope: serving {', '.join(server.agents)} on {server.address}")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    announce("meshscope: shutting down (draining in-flight turns)")
    await server.stop()
