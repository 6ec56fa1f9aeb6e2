"""What discovery knows about a replica."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshscope.discovery.addresses import host_port

AGENT_TAG = "meshscope-agent"
"""The Consul tag that marks a service as a meshscope agent."""

PROTOCOL_VERSION = "1"
"""The meshscope wire-protocol version, advertised in each registration's meta."""


@dataclass(frozen=True, slots=True)
class Registration:
    """One agent served by one replica, as it registers itself."""

    agent: str
    replica_id: str
    host: str
    port: int
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Instance:
    """One replica of an agent, as a consumer sees it."""

    agent: str
    replica_id: str
    host: str
    port: int
    meta: Mapping[str, str] = field(default_factory=dict)
    health: str = "passing"
    """Consul's aggregated check status: passing, warning or critical."""

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)


def replica_id_for(agent: str, host: str, port: int) -> str:
    """A replica id that is stable across restarts of the same replica.

    A restarted process on the same address replaces its old registration
    instead of leaving a critical duplicate behind.
    """
    return f"{agent}@{host}:{port}"
