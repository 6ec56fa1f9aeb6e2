"""The load client: sequential latency and concurrent throughput over `grpc.aio`.

Both servers are driven by exactly this code through the generated stub, so
the client's own cost (it shares the machine's cores with the server) is the
same on both sides of every comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields

from bench.workload import INPUT_TEXT, check_turn, invoke_request
from meshscope.channels import ChannelSettings, open_channel
from meshscope.v1 import agent_pb2, agent_pb2_grpc


@dataclass(frozen=True)
class TurnTiming:
    """Seconds from sending the request to the first and to the last event."""

    first_s: float
    last_s: float


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a batch of sequential turns, in milliseconds."""

    first_p50_ms: float
    first_p99_ms: float
    last_p50_ms: float
    last_p99_ms: float


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median_latency(summaries: Sequence[LatencySummary]) -> LatencySummary:
    """Each percentile's median across rounds (figure by figure, not one real round)."""
    return LatencySummary(
        *(statistics.median(getattr(s, f.name) for s in summaries) for f in fields(LatencySummary))
    )


def positive_int(raw: str) -> int:
    """An argparse type for counts: a bad value is a usage error, not a traceback after servers started."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r}: must be at least 1")
    return value


def verdict(ok: bool) -> str:
    """How a benchmark prints a target: met or missed."""
    return "PASS" if ok else "MISS"


def summarize(timings: Sequence[TurnTiming]) -> LatencySummary:
    first = [t.first_s * 1000 for t in timings]
    last = [t.last_s * 1000 for t in timings]
    return LatencySummary(
        percentile(first, 50), percentile(first, 99), percentile(last, 50), percentile(last, 99)
    )


class TimedClient:
    """Sequential latency and concurrent throughput of whatever one `timed_turn` is."""

    async def timed_turn(self, session_id: str) -> TurnTiming:
        raise NotImplementedError

    async def sequential(self, turns: int, session_prefix: str) -> list[TurnTiming]:
        """`turns` turns one after another, each in a fresh session."""
        return [await self.timed_turn(f"{session_prefix}-{i}") for i in range(turns)]

    async def concurrent(self, clients: int, turns_per_client: int, session_prefix: str) -> float:
        """`clients` coroutines on this one channel, each running turns back to back; turns/s."""

        async def worker(client: int) -> None:
            for i in range(turns_per_client):
                await self.timed_turn(f"{session_prefix}-{client}-{i}")

        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        return clients * turns_per_client / (time.perf_counter() - start)


class LoadClient(TimedClient):
    """One channel to one server; every call runs the echo workload.

    With `sessions` each turn names a fresh session (the server locks, loads,
    saves and transcribes it); without, turns carry no session id and the
    server keeps nothing, as the raw baseline does.
    """

    def __init__(
        self,
        address: str,
        agent: str,
        text: str = INPUT_TEXT,
        *,
        sessions: bool = True,
        settings: ChannelSettings | None = None,
    ) -> None:
        """`settings`: how the channel is made (default: plaintext, the default limits)."""
        self.agent = agent
        self.text = text
        self.sessions = sessions
        self._channel = open_channel(address, settings or ChannelSettings())
        self._stub = agent_pb2_grpc.AgentServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def events(self, session_id: str) -> list[agent_pb2.AgentEvent]:
        """One whole turn's events."""
        return [event async for event in self._stub.Invoke(invoke_request(self.agent, self.text, session_id))]

    async def timed_turn(self, session_id: str) -> TurnTiming:
        """One turn, timed at its first and its last event."""
        request = invoke_request(self.agent, self.text, session_id if self.sessions else "")
        start = time.perf_counter()
        first = last = 0.0
        async for _event in self._stub.Invoke(request):
            last = time.perf_counter()
            if not first:
                first = last
        if not first:
            raise RuntimeError("the server streamed no events")
        return TurnTiming(first - start, last - start)

    async def verify(self, session_id: str) -> int:
        """Check the server streams the benchmark's workload; its wire bytes per turn."""
        return check_turn(await self.events(session_id)).wire_bytes
