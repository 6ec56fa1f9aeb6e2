"""DNS discovery: each agent's replicas are the addresses its name resolves to (DESIGN.md §11).

For platforms without Consul, Kubernetes above all: a headless Service (`clusterIP: None`) answers
its name with one A (or AAAA) record per ready pod, so the records are the replicas and the pods'
readiness probes are their health checks. `DnsWatcher` re-resolves every agent's name every
`interval_s` and publishes the set, so the orchestrator's pool opens a channel per pod and balances
across them exactly as it does with Consul's instances; a pod that leaves the records is gone from
the set at the next resolution.

  MESHSCOPE_DNS_SERVICES     agent=name:port;agent=name:port     (required with MESHSCOPE_DISCOVERY=dns)
  MESHSCOPE_DNS_INTERVAL_S   seconds between resolutions          5
  MESHSCOPE_DNS_NAMESERVER   an IP address[:port] to ask instead of resolv.conf's servers

A name that does not exist (NXDOMAIN) or has no address records is an agent with no replica (a
Service whose pods are all unready). A resolver that does not answer (timeout, SERVFAIL, refused)
for both record types keeps the last set: a flaky DNS server must not empty the mesh; the outage is
logged once when it starts and once when it ends. When one type answers and the other does not (a
server that drops AAAA queries), the answering type's records are the set. An IP address given
instead of a name is that one replica.

Resolution is dnspython's asyncio resolver, which reads resolv.conf's search domains and ndots (kept
when MESHSCOPE_DNS_NAMESERVER replaces its servers). It asks DNS servers only: /etc/hosts entries
(Kubernetes hostAliases, Compose extra_hosts) are not seen. The loop's `getaddrinfo` would see them,
but it tells neither NXDOMAIN from a timeout nor an empty answer from a failure, which is what
keeps a flaky DNS server from emptying the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import dns.asyncresolver
import dns.exception
import dns.resolver

from meshscope.discovery.backoff import Outage
from meshscope.discovery.config import DnsSettings, is_ip_address
from meshscope.discovery.model import Instance, replica_id_for
from meshscope.discovery.watcher import _Notifier

__all__ = ["DnsWatcher"]

log = logging.getLogger("meshscope.discovery")

RESOLVE_TIMEOUT_S = 2.0


class DnsWatcher(_Notifier):
    """Re-resolves each agent's name every `interval_s` (see the module docstring)."""

    def __init__(self, settings: DnsSettings) -> None:
        super().__init__()
        self.settings = settings
        try:
            self._resolver = dns.asyncresolver.Resolver()  # resolv.conf: servers, search domains, ndots
        except dns.resolver.NoResolverConfiguration:
            if settings.nameserver is None:
                raise
            self._resolver = dns.asyncresolver.Resolver(configure=False)
        if settings.nameserver is not None:
            host, port = settings.nameserver
            self._resolver.nameservers = [host]
            self._resolver.port = port
        self._resolver.lifetime = RESOLVE_TIMEOUT_S
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage(log, "resolving the agents' DNS names")
        self.failure: str | None = None
        """Why the last resolution of some name failed (None: every name answered)."""

    async def start(self) -> None:
        """Resolve every name once (so the orchestrator starts with the replicas there are), then
        keep resolving in the background."""
        await self.resolve_all()
        self._task = asyncio.create_task(self._loop(), name="meshscope-watch-dns")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            await self.resolve_all()

    async def resolve_all(self) -> None:
        """One resolution of every agent's name, published; failures keep the last sets."""
        agents = list(self.settings.services)
        results = await asyncio.gather(*(self._addresses(self.settings.services[a][0]) for a in agents))
        failed = [
            (agent, result) for agent, result in zip(agents, results, strict=True) if isinstance(result, str)
        ]
        for agent, result in zip(agents, results, strict=True):
            if isinstance(result, str):
                continue
            port = self.settings.services[agent][1]
            self._publish(
                agent,
                tuple(
                    Instance(agent, replica_id_for(agent, host, port), host, port) for host in sorted(result)
                ),
            )
        if failed:
            agent, reason = failed[0]
            self.failure = f"{agent}: {reason}"
            self._outage.failed(
                self.failure, self.settings.interval_s, kind="unanswered", then="then at that interval"
            )
        else:
            self.failure = None
            self._outage.recovered()

    async def _addresses(self, name: str) -> set[str] | str:
        """The IPv4 and IPv6 addresses of `name` (empty: none exist), or why the resolver failed
        (for both record types: one that answers is enough)."""
        if is_ip_address(name):
            return {name}
        found: set[str] = set()
        failures: list[str] = []
        for record_type in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(name, record_type, search=True)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
                failures.append(f"{name} {record_type}: {type(exc).__name__}")
                continue
            found.update(record.to_text() for record in answer)
        return failures[0] if len(failures) == 2 else found
