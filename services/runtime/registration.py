"""Registering a running agent server in discovery (docs/architecture.md, "Discovery").

After the server serves, each hosted agent is registered as its own
service (name = agent name) with a gRPC health check on this replica's
health service; on shutdown the registrar deregisters before the drain.
"""

from __future__ import annotations

import socket

from meshscope.discovery.config import DiscoverySettings
from meshscope.discovery.model import PROTOCOL_VERSION, Registration, replica_id_for
from meshscope.discovery.registrar import Registrar
from meshscope.discovery.registry import ConsulRegistry
from meshscope.services.runtime.server import AgentServer

_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def advertised_host(bind_host: str, configured: str | None) -> str:
    """The address other processes reach this replica at."""
    if configured:
        return configured
    if bind_host not in _WILDCARDS:
        return bind_host
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def registrations_for(server: AgentServer, host: str) -> list[Registration]:
    """One registration per hosted agent, with the meta consumers filter on."""
    registrations = []
    for agent in server.agents.values():
        card = agent.card()
        registrations.append(
            Registration(
                agent=agent.name,
                replica_id=replica_id_for(agent.name, host, server.port),
                host=host,
                port=server.port,
                meta={
                    "description": card.description,
                    "protocol_version": PROTOCOL_VERSION,
                    "version": card.version,
                    "skills": ",".join(s.id for s in card.skills),
                    "model": card.model,
                    # Replicas keeping sessions in their own memory split a session's turns between
                    # them: the orchestrator and `meshscope agents` warn when they see that.
                    "sessions": "shared" if server.store.shared else "memory",
                },
                tls=server.settings.security.serves_tls,
            )
        )
    return registrations


def registered_replica_ids(server: AgentServer, discovery: DiscoverySettings) -> list[str]:
    """The replica ids `register_server` registers (or would, on another backend): one per hosted agent."""
    host = advertised_host(server.settings.host, discovery.advertise_host)
    return [registration.replica_id for registration in registrations_for(server, host)]


async def register_server(server: AgentServer, discovery: DiscoverySettings) -> Registrar | None:
    """Start keeping `server`'s agents registered; deregistration runs before its drain."""
    if discovery.backend != "consul":
        return None
    host = advertised_host(server.settings.host, discovery.advertise_host)
    registrar = Registrar(
        ConsulRegistry(discovery.consul),
        registrations_for(server, host),
        recheck_s=discovery.consul.recheck_s,
        call_timeout_s=discovery.consul.call_timeout_s,
        where=f"Consul at {discovery.consul.http_addr}",
    )
    server.add_before_drain(registrar.stop)
    await registrar.start()
    return registrar
