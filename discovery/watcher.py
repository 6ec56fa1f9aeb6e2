"""Watching the mesh: an up-to-date set of healthy replicas per agent.

`ConsulWatcher` runs one long-lived blocking query per agent on
`health/service/<agent>?passing` and one on the catalog (to learn new agent
names by their tag). On Consul errors it keeps the last good sets, backs off
with jitter (0.2 s doubling to 10 s, per query) and resumes; the logs say when
Consul stopped answering (one WARNING for all queries) and when it answered
again, with how long it was out. An index that goes backwards (Consul
restarted and lost its state) resets the query. `StaticWatcher` serves fixed endpoints.
Both notify listeners on every change.

The Consul client (py-consul, with aiohttp and requests: ~20 MB resident) is imported when a
`ConsulWatcher` starts or `list_replicas` runs, not with this module: a process with static
discovery never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from meshscope.discovery.backoff import Backoff, Outage
from meshscope.discovery.config import ConsulSettings
from meshscope.discovery.model import AGENT_TAG, Instance, replica_id_for

log = logging.getLogger("meshscope.discovery")

Listener = Callable[[str, tuple[Instance, ...]], None]
"""Called with an agent name and its new set of healthy instances."""


class Watcher(Protocol):
    """What consumers (the orchestrator, the CLI) read the mesh from."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def agents(self) -> list[str]:
        """Known agent names, sorted."""
        ...

    def instances(self, agent: str) -> tuple[Instance, ...]:
        """The healthy instances of an agent (empty when unknown)."""
        ...

    def add_listener(self, listener: Listener) -> None: ...


class _Notifier:
    def __init__(self) -> None:
        self._sets: dict[str, tuple[Instance, ...]] = {}
        self._listeners: list[Listener] = []

    def agents(self) -> list[str]:
        return sorted(self._sets)

    def instances(self, agent: str) -> tuple[Instance, ...]:
        return self._sets.get(agent, ())

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _publish(self, agent: str, instances: tuple[Instance, ...]) -> None:
        if self._sets.get(agent) == instances and agent in self._sets:
            return
        self._sets[agent] = instances
        for listener in self._listeners:
            try:
                listener(agent, instances)
            except Exception:
                log.exception("discovery listener failed")

    def _forget(self, agent: str) -> None:
        if agent in self._sets:
            self._publish(agent, ())
            del self._sets[agent]


class StaticWatcher(_Notifier):
    """Fixed endpoints per agent: tests, and platforms where DNS does discovery."""

    def __init__(self, endpoints: Mapping[str, Sequence[tuple[str, int]]]) -> None:
        super().__init__()
        self._endpoints = endpoints

    async def start(self) -> None:
        for agent, pairs in self._endpoints.items():
            self._publish(
                agent,
                tuple(Instance(agent, replica_id_for(agent, host, port), host, port) for host, port in pairs),
            )

    async def stop(self) -> None:
        return None


def _instances(agent: str, entries: Iterable[Mapping[str, Any]]) -> tuple[Instance, ...]:
    found = []
    for entry in entries:
        service = entry.get("Service", {})
        host = service.get("Address") or entry.get("Node", {}).get("Address", "")
        checks = entry.get("Checks", [])
        statuses = {c.get("Status") for c in checks}
        health = "critical" if "critical" in statuses else "warning" if "warning" in statuses else "passing"
        found.append(
            Instance(
                agent=agent,
                replica_id=service.get("ID", ""),
                host=host,
                port=int(service.get("Port", 0)),
                meta=dict(service.get("Meta") or {}),
                health=health,
            )
        )
    return tuple(sorted(found, key=lambda i: i.replica_id))


def next_index(previous: int | None, returned: Any) -> int | None:
    """The index for the next blocking query, following Consul's rules.

    Indexes come back as strings; one that went backwards (or is not
    positive) means Consul's state was reset, so the query starts over.
    """
    try:
        index = int(returned)
    except (TypeError, ValueError):
        return None
    if index <= 0 or (previous is not None and index < previous):
        return None
    return index


class _Query:
    """One query loop's back-off, and its hold after an outage.

    A Consul that answers again may not have seen the replicas re-register yet (a restarted
    dev agent forgets them), so for `hold_s` after a query's first answer following its
    failures, an empty answer does not empty the last known set. Counted from that first
    answer, not from the last failure: the retry that finds Consul back comes a whole
    back-off delay (up to 10 s) after the failure before it, longer than the hold.
    """

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.backoff = Backoff()
        self.failing = False
        self.answered_at: float | None = None
        """When the query was first answered after failing (time.monotonic())."""

    def failed(self) -> float:
        """Record a failure; the delay (seconds) before the next try."""
        self.failing = True
        return self.backoff.next_delay()

    def answered(self) -> None:
        if self.failing:
            self.failing = False
            self.answered_at = time.monotonic()
            self.backoff.reset()

    def recovering(self) -> bool:
        return self.answered_at is not None and time.monotonic() - self.answered_at < self.hold_s


class ConsulWatcher(_Notifier):
    """Blocking queries on Consul's catalog and health endpoints."""

    def __init__(self, settings: ConsulSettings, agents: Sequence[str] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._fixed = list(agents) if agents is not None else None
        self._client: Any = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._catalog_task: asyncio.Task[None] | None = None
        self.errors = 0
        self._outage = Outage(log, f"watching Consul at {settings.http_addr}")
        """Shared by every query: one line when Consul stops answering, one when it answers again."""
        self.last_error_at: float | None = None
        """When a query last failed (time.monotonic())."""

    async def start(self) -> None:
        from meshscope.discovery.consul_client import connect

        self._client = connect(self.settings)
        if self._fixed is None:
            self._catalog_task = asyncio.create_task(self._watch_catalog(), name="meshscope-watch-catalog")
        else:
            for agent in self._fixed:
                self._watch(agent)

    def _watch(self, agent: str) -> None:
        if agent not in self._tasks:
            self._tasks[agent] = asyncio.create_task(
                self._watch_agent(agent), name=f"meshscope-watch-{agent}"
            )

    async def stop(self) -> None:
        tasks = list(self._tasks.values()) + ([self._catalog_task] if self._catalog_task else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _wait(self, query: _Query) -> str:
        """How long a blocking query may wait: while recovering, only until the hold ends, so
        an answer that changes nothing is asked again soon rather than after the full wait."""
        from meshscope.discovery.consul_client import duration

        return duration(self.settings.recover_hold_s if query.recovering() else self.settings.wait_s)

    async def _retry(self, query: _Query, what: str, exc: BaseException) -> None:
        from meshscope.discovery.consul_client import describe_error

        self.errors += 1
        self.last_error_at = time.monotonic()
        delay = query.failed()
        self._outage.failed(
            f"{what} failed ({describe_error(exc)})",
            delay,
            retrying="keeping the last known replica sets, retrying",
        )
        await asyncio.sleep(delay)

    def _answered(self, query: _Query) -> None:
        query.answered()
        self._outage.recovered()

    async def _watch_catalog(self) -> None:
        index: int | None = None
        query = _Query(self.settings.recover_hold_s)
        while True:
            try:
                returned, services = await self._client.catalog.services(index=index, wait=self._wait(query))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Consul holds a query whose index is ahead of its own (a restarted
                # Consul) until `wait` runs out, so after an error start over.
                index = None
                await self._retry(query, "the catalog", exc)
                continue
            self._answered(query)
            index = next_index(index, returned)
            names = {name for name, tags in services.items() if AGENT_TAG in (tags or [])}
            for name in names:
                self._watch(name)
            if query.recovering():  # an agent missing now may be re-registering: keep watching it
                continue
            for name in set(self._tasks) - names:
                self._tasks.pop(name).cancel()
                self._forget(name)

    async def _watch_agent(self, agent: str) -> None:
        index: int | None = None
        query = _Query(self.settings.recover_hold_s)
        while True:
            try:
                returned, entries = await self._client.health.service(
                    agent, index=index, wait=self._wait(query), passing=True
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                index = None  # see _watch_catalog: start over after an error
                await self._retry(query, f"agent {agent!r}", exc)
                continue
            self._answered(query)
            index = next_index(index, returned)
            found = _instances(agent, entries)
            if not found and self.instances(agent) and query.recovering():
                continue  # see `_Query`: keep the last known set for a moment
            self._publish(agent, found)


class ReadDenied(Exception):
    """The ACL token may not read what discovery needs."""


async def list_replicas(settings: ConsulSettings) -> dict[str, tuple[Instance, ...]]:
    """Every agent in Consul with all its replicas, healthy or not (one-shot, for the CLI)."""
    import consul

    from meshscope.discovery.consul_client import connect

    client = connect(settings)
    try:
        _, services = await client.catalog.services()
        names = sorted(n for n, tags in services.items() if AGENT_TAG in (tags or []))
        if not names:
            # Under an ACL default-deny policy Consul filters reads instead of refusing
            # them, so an empty mesh may be a missing permission: ask to find out.
            try:
                await client.agent.self()
            except consul.ACLPermissionDenied:
                raise ReadDenied(
                    "Consul hides the catalog from this token: it needs service:read and node:read "
                    "(set CONSUL_HTTP_TOKEN)"
                ) from None
        result = {}
        for name in names:
            _, entries = await client.health.service(name)
            result[name] = _instances(name, entries)
        return result
    finally:
        await client.close()
