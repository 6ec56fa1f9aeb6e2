"""Registering replicas: the interface and its Consul implementation."""

from __future__ import annotations

from typing import Any, Protocol

import consul

from meshscope.discovery.config import ConsulSettings
from meshscope.discovery.consul_client import connect, duration
from meshscope.discovery.model import AGENT_TAG, Registration

META_VALUE_LIMIT = 512
"""Consul rejects meta values longer than this."""


class RegistrationDenied(Exception):
    """The registry refused a registration (an ACL without the needed permission)."""


class Registry(Protocol):
    """Where replicas announce themselves."""

    async def register(self, registration: Registration) -> None: ...

    async def deregister(self, replica_id: str) -> None: ...

    async def registered_ids(self) -> set[str]:
        """Replica ids the registry currently holds for this node."""
        ...

    async def close(self) -> None: ...


class ConsulRegistry:
    """Registers each agent as a Consul service with a gRPC health check (Consul >= 1.8)."""

    def __init__(self, settings: ConsulSettings) -> None:
        self.settings = settings
        self._client: Any = None

    def _consul(self) -> Any:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    def service_definition(self, registration: Registration) -> dict[str, Any]:
        """The arguments of the register call: name = agent, unique id, tag, meta, gRPC check."""
        s = self.settings
        return {
            "name": registration.agent,
            "service_id": registration.replica_id,
            "address": registration.host,
            "port": registration.port,
            "tags": [AGENT_TAG],
            "meta": {k: v[:META_VALUE_LIMIT] for k, v in registration.meta.items()},
            "check": consul.Check.grpc(
                f"{registration.address}/{registration.agent}",
                duration(s.check_interval_s),
                timeout=duration(s.check_timeout_s),
                deregister=duration(s.deregister_after_s),
            ),
        }

    async def register(self, registration: Registration) -> None:
        try:
            await self._consul().agent.service.register(**self.service_definition(registration))
        except consul.ACLPermissionDenied as exc:
            raise RegistrationDenied(
                f"Consul refused to register {registration.agent!r}: the ACL token needs "
                f"service:write on {registration.agent!r} (set CONSUL_HTTP_TOKEN)"
            ) from exc

    async def deregister(self, replica_id: str) -> None:
        await self._consul().agent.service.deregister(replica_id)

    async def registered_ids(self) -> set[str]:
        try:
            services = await self._consul().agent.services()
        except consul.ACLPermissionDenied as exc:
            raise RegistrationDenied(
                "Consul refused to list this node's services: the ACL token needs service:read "
                "(set CONSUL_HTTP_TOKEN)"
            ) from exc
        return set(services)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
