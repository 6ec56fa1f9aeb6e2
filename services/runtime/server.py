"""The agent-service process: one server hosting one or more agents.

An `AgentServer` is the shared server core (`meshscope.server.Server`: bind, TLS, health,
reflection, interceptors, the shutdown sequence, signals) hosting `AgentService`, with a
health status per agent name besides "" and the service's. At the end of the shutdown
grace, turns still running are cut off (`CutOff`: an error event, UNAVAILABLE, reason
CUT_OFF) and still save their state; then the turn runner and the session store close.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshscope.server import InFlight, Server, Service
from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.errors import CutOff
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.servicer import AgentServicer
from meshscope.services.runtime.state import InMemorySessionStore, SessionStore
from meshscope.services.runtime.turn import TurnRunner, TurnStats
from meshscope.v1 import agent_pb2, agent_pb2_grpc

AGENT_SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


class AgentServer(Server):
    """Hosts agents on one port: `start`/`stop`, `run` until a signal, or `async with`."""

    settings: ServerSettings

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
        settings = settings or ServerSettings()
        self.store = store or InMemorySessionStore()
        self.runner = TurnRunner(
            self.store,
            lock_ttl_s=lock_ttl_s,
            lock_wait_s=lock_wait_s,
            max_event_bytes=settings.max_message_bytes,
        )
        servicer = AgentServicer(
            self.agents,
            self.runner,
            lambda: self.draining,
            max_message_bytes=settings.max_message_bytes,
            coalesce_max_delay_s=settings.coalesce_max_delay_ms / 1000,
        )
        super().__init__(
            settings,
            [Service(AGENT_SERVICE_NAME, agent_pb2_grpc.add_AgentServiceServicer_to_server, servicer)],
            what=", ".join(self.agents),
            in_flight=InFlight(self.runner.idle, self._cut_off, "turn(s)"),
            health_names=self.agents,
        )
        self.add_closer(self.runner.close)
        self.add_closer(self.store.close)

    @property
    def stats(self) -> TurnStats:
        return self.runner.stats

    def _cut_off(self, grace_s: float) -> int:
        return self.runner.interrupt(
            CutOff(
                f"agent service is shutting down: the turn was cut off after the {grace_s:g}s grace period"
            )
        )
