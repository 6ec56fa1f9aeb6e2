"""The endpoint pool: one gRPC channel per agent replica, picked by load.

Python gRPC has no pluggable resolver or balancer, so the pool keeps one
channel per replica, opened when discovery reports it and closed when it
leaves, and picks a replica by power-of-two-choices on the fewest in-flight
streams. A replica that fails before its first event is ejected for a
cooldown so retries go elsewhere.

Two bounded resources are not outages here:
- new streams to one replica that have not produced their first event are
  bounded (`max_pending_streams`); more wait in the pool rather than pile up in
  the agent server's gRPC backlog, which cancels calls at random past 1000;
- when discovery drops every replica of an agent at once (all health checks
  failed together: a loaded machine, a flapping network), the pool keeps
  routing to every replica that left within the last `panic_grace_s`, for
  `panic_grace_s` (Envoy's panic threshold, at 0 %). A replica that comes
  back ends the panic; at the end of the grace the set is dropped. Replicas
  that are really gone fail their calls before the first event, are ejected,
  and runs fail with UNAVAILABLE without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from meshscope.channels import ChannelSettings, open_channel
from meshscope.discovery.model import Instance
from meshscope.telemetry.instruments import EJECTIONS
from meshscope.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger("meshscope.pool")

INVOKE_METHOD = "/meshscope.v1.AgentService/Invoke"


def relay_invoke(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable:
    """AgentService.Invoke on `channel`, its events left as the agent encoded them (`bytes`):
    the orchestrator passes them on without decoding them (see relay.proto)."""
    return channel.unary_stream(
        INVOKE_METHOD,
        request_serializer=agent_pb2.InvokeRequest.SerializeToString,
        response_deserializer=None,
        _registered_method=True,
    )


@dataclass
class Endpoint:
    """One replica of one agent, with its channel and live load."""

    instance: Instance
    channel: grpc.aio.Channel
    stub: Any
    relay: grpc.aio.UnaryStreamMultiCallable
    """The replica's Invoke, streaming its events as bytes (`relay_invoke`)."""
    pending: asyncio.Semaphore
    """Held by each stream until its first event (see `EndpointPool.max_pending_streams`)."""
    in_flight: int = 0
    ejected_until: float = 0.0
    panic: bool = False
    """Discovery dropped it with every other replica of its agent; routed to during the grace."""

    @property
    def replica_id(self) -> str:
        return self.instance.replica_id

    def available(self, now: float) -> bool:
        return self.ejected_until <= now

    def health(self, now: float) -> str:
        """ejected, panic (failing its checks, still routed to), or Consul's status."""
        if not self.available(now):
            return "ejected"
        return "panic" if self.panic else self.instance.health


@dataclass
class _AgentEndpoints:
    by_id: dict[str, Endpoint] = field(default_factory=dict)
    panic_end: asyncio.TimerHandle | None = None
    """Set while in panic: drops the set when the grace runs out."""
    left: dict[str, tuple[Instance, float]] = field(default_factory=dict)
    """Replicas discovery dropped, with when (time.monotonic()): Consul checks each replica on
    its own timer, so replicas failing "at once" leave one by one, within a check interval."""


class NoReplica(Exception):
    """No healthy, non-ejected replica of an agent."""

    def __init__(self, agent: str, known: int) -> None:
        detail = "no replica is registered" if known == 0 else f"all {known} replica(s) are unavailable"
        super().__init__(f"agent {agent!r} is unavailable: {detail}")


class EndpointPool:
    """Channels to every replica discovery reports, and load-aware picking."""

    def __init__(
        self,
        channels: ChannelSettings | None = None,
        eject_s: float = 5.0,
        *,
        max_pending_streams: int = 500,
        panic_grace_s: float = 10.0,
    ) -> None:
        """`channels`: how channels to replicas are made (limits, keepalive, TLS, token; None:
        the defaults, plaintext). `eject_s`, `panic_grace_s`: seconds. `max_pending_streams`:
        per replica, at least 1."""
        self._agents: dict[str, _AgentEndpoints] = {}
        self._warned_split: set[str] = set()
        self._channels = channels or ChannelSettings()
        self.eject_s = eject_s
        self.max_pending_streams = max_pending_streams
        self.panic_grace_s = panic_grace_s
        self._closing: set[asyncio.Task[None]] = set()
        self._draining: dict[str, Endpoint] = {}
        """Replicas discovery dropped while streams were open on them: their channels stay
        open until the last stream ends (or they come back, and are reused as they are)."""

    def update(self, agent: str, instances: Iterable[Instance]) -> None:
        """Discovery listener: open channels to new replicas, close those that left.

        Every replica leaving at once starts a panic instead (see the module docstring).
        """
        current = self._agents.setdefault(agent, _AgentEndpoints())
        wanted = {i.replica_id: i for i in instances}
        if not wanted and self.panic_grace_s > 0 and current.panic_end is not None:
            return
        if not wanted and self.panic_grace_s > 0:
            # Every replica that left within the grace is routed to again, not only the last.
            since = time.monotonic() - self.panic_grace_s
            recent = {rid: i for rid, (i, at) in current.left.items() if at >= since}
            if current.by_id or recent:
                self._apply(agent, current, {**recent, **{r: e.instance for r, e in current.by_id.items()}})
                self._start_panic(agent, current)
                return
        self._warn_split_sessions(agent, wanted.values())
        if current.panic_end is not None:
            current.panic_end.cancel()
            current.panic_end = None
            for endpoint in current.by_id.values():
                endpoint.panic = False
            log.warning("panic over for %s: %d replica(s) pass their checks again", agent, len(wanted))
        self._apply(agent, current, wanted)

    def _warn_split_sessions(self, agent: str, instances: Iterable[Instance]) -> None:
        """Once per agent: several replicas keeping sessions in their own memory split every session."""
        local = [i for i in instances if i.meta.get("sessions") == "memory"]
        if len(local) > 1 and agent not in self._warned_split:
            self._warned_split.add(agent)
            log.warning(
                "%s has %d replicas keeping sessions in their own memory: a session's turns go to "
                "whichever replica is picked, so each sees only its own part of the conversation; "
                "set REDIS_URL on every replica (meshscope up: up.redis: true)",
                agent,
                len(local),
            )

    def _start_panic(self, agent: str, current: _AgentEndpoints) -> None:
        for endpoint in current.by_id.values():
            endpoint.panic = True
        current.panic_end = asyncio.get_running_loop().call_later(
            self.panic_grace_s, self._end_panic, agent, current
        )
        log.warning(
            "every replica of %s (%d) left discovery at once: still routing to them for %.1fs (panic)",
            agent,
            len(current.by_id),
            self.panic_grace_s,
        )

    def _end_panic(self, agent: str, current: _AgentEndpoints) -> None:
        current.panic_end = None
        log.warning(
            "panic of %s ended: no replica came back within %.1fs; dropping them", agent, self.panic_grace_s
        )
        self._apply(agent, current, {})
        current.left.clear()  # they had their grace: an empty set again is no new panic

    def _apply(self, agent: str, current: _AgentEndpoints, wanted: dict[str, Instance]) -> None:
        for replica_id in list(current.by_id):
            endpoint = current.by_id[replica_id]
            if replica_id not in wanted or wanted[replica_id].address != endpoint.instance.address:
                del current.by_id[replica_id]
                self._retire(endpoint)
                current.left[replica_id] = (endpoint.instance, time.monotonic())
                log.info("replica %s of %s left", replica_id, agent)
        for replica_id, instance in wanted.items():
            current.left.pop(replica_id, None)
            if replica_id in current.by_id:
                current.by_id[replica_id].instance = instance
                continue
            returning = self._draining.pop(replica_id, None)
            if returning is not None and returning.instance.address == instance.address:
                returning.instance = instance  # it came back: keep its channel and its live load
                returning.panic = False
                current.by_id[replica_id] = returning
                log.info("replica %s of %s at %s came back", replica_id, agent, instance.address)
                continue
            if returning is not None:
                self._retire(returning)
            channel = open_channel(instance.address, self._channels)
            current.by_id[replica_id] = Endpoint(
                instance,
                channel,
                agent_pb2_grpc.AgentServiceStub(channel),
                relay_invoke(channel),
                asyncio.Semaphore(self.max_pending_streams),
            )
            log.info("replica %s of %s at %s joined", replica_id, agent, instance.address)

    def _retire(self, endpoint: Endpoint) -> None:
        # Streams still open on a departing replica keep running: closing its channel
        # would cancel them (a replica that merely missed one health check would cut
        # every run it serves). Close when the last one ends.
        if endpoint.in_flight:
            self._draining[endpoint.replica_id] = endpoint
        else:
            self._close(endpoint)

    def _close(self, endpoint: Endpoint) -> None:
        task = asyncio.ensure_future(endpoint.channel.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def stream_started(self, endpoint: Endpoint) -> None:
        endpoint.in_flight += 1

    def stream_ended(self, endpoint: Endpoint) -> None:
        endpoint.in_flight -= 1
        if endpoint.in_flight == 0 and self._draining.get(endpoint.replica_id) is endpoint:
            del self._draining[endpoint.replica_id]
            self._close(endpoint)

    def agents(self) -> list[str]:
        return sorted(name for name, group in self._agents.items() if group.by_id)

    def endpoints(self, agent: str) -> list[Endpoint]:
        group = self._agents.get(agent)
        return sorted(group.by_id.values(), key=lambda e: e.replica_id) if group else []

    def has_replicas(self, agent: str) -> bool:
        """Whether discovery knows any replica of `agent` (cheaper than `endpoints` on every run)."""
        group = self._agents.get(agent)
        return bool(group and group.by_id)

    def pick(self, agent: str, exclude: set[str] | None = None) -> Endpoint:
        """Power of two choices on fewest in-flight streams, among available replicas."""
        now = time.monotonic()
        group = self._agents.get(agent)
        all_endpoints = list(group.by_id.values()) if group else []  # unsorted: the choice is random
        candidates = [
            e for e in all_endpoints if e.available(now) and not (exclude and e.replica_id in exclude)
        ]
        if not candidates:
            raise NoReplica(agent, len(all_endpoints))
        if len(candidates) == 1:
            return candidates[0]
        first, second = random.sample(candidates, 2)
        return first if first.in_flight <= second.in_flight else second

    def eject(self, endpoint: Endpoint) -> None:
        endpoint.ejected_until = time.monotonic() + self.eject_s
        EJECTIONS.add(1, {"agent": endpoint.instance.agent})
        log.warning("ejected replica %s for %.1fs", endpoint.replica_id, self.eject_s)

    def healthy_counts(self) -> list[tuple[str, int]]:
        """Per agent, the replicas in rotation: passing their checks (not in panic), not ejected."""
        now = time.monotonic()
        return [
            (agent, sum(1 for e in group.by_id.values() if e.available(now) and not e.panic))
            for agent, group in sorted(self._agents.items())
        ]

    async def close(self) -> None:
        for group in self._agents.values():
            if group.panic_end is not None:
                group.panic_end.cancel()
                group.panic_end = None
        for endpoint in self._draining.values():
            await endpoint.channel.close()
        self._draining.clear()
        for group in self._agents.values():
            for endpoint in group.by_id.values():
                await endpoint.channel.close()
            group.by_id.clear()
        for task in list(self._closing):
            task.cancel()
