"""Measuring the systems: alternating rounds, each a 1-client and a 64-client phase.

A round measures, per system (the order rotates from round to round, so that no system is
always first after another's load):

- 1 client: `sequential_turns` turns back to back; p50/p99 of the time to the first and to
  the last content delta, and to the end of the stream;
- `clients` clients: coroutines in this one process, each running `turns_per_client` turns
  back to back over the system's one client (one channel or one connection pool); turns/s,
  the CPU of the system's server processes per turn (utime+stime from /proc over the phase),
  and the load generator's own CPU per turn (`time.process_time`);
- the RSS of each of the system's processes after the load.

Every turn is checked (`bench.peers.checks`); a wrong one, or a call that fails, raises
`BadResponse` and stops the run.
The figures quoted are each figure's median across rounds (`median_of`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import grpc

from bench.load import percentile
from bench.peers.checks import BadResponse
from bench.peers.clients import Timing
from bench.peers.systems import System


@dataclass(frozen=True)
class Plan:
    """How much to run; `QUICK` is the smoke-test size (its figures mean nothing)."""

    rounds: int = 3
    warmup_turns: int = 30
    sequential_turns: int = 200
    clients: int = 64
    turns_per_client: int = 10


QUICK = Plan(rounds=1, warmup_turns=5, sequential_turns=20, clients=8, turns_per_client=3)


@dataclass(frozen=True)
class Figures:
    """One system's figures: one round's, or the medians across rounds (`round_no` 0)."""

    key: str
    round_no: int
    first_p50_ms: float
    first_p99_ms: float
    last_p50_ms: float
    last_p99_ms: float
    end_p50_ms: float
    turns_per_s: float
    server_cpu_ms_per_turn: float
    client_cpu_ms_per_turn: float
    rss_mib: dict[str, float] = field(default_factory=dict)
    """VmRSS of each of the system's processes after the load, by process."""

    @property
    def rss_total_mib(self) -> float:
        return sum(self.rss_mib.values())


async def turn(system: System, session_id: str) -> Timing:
    """One checked turn; a failed call (a gRPC status, an HTTP error, a timeout) is a `BadResponse` too."""
    try:
        return await system.client.turn(session_id)
    except grpc.aio.AioRpcError as exc:
        raise BadResponse(f"{system.key}: the call failed: {exc.code().name}: {exc.details()}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BadResponse(f"{system.key}: the call failed: {type(exc).__name__}: {exc}") from None


async def sequential(system: System, turns: int, prefix: str) -> list[Timing]:
    """`turns` checked turns one after another, each in a fresh session `prefix-<i>`."""
    return [await turn(system, f"{prefix}-{i}") for i in range(turns)]


async def concurrent(system: System, clients: int, turns_per_client: int, prefix: str) -> float:
    """`clients` coroutines running checked turns back to back; the turns per second."""

    async def worker(client: int) -> None:
        for i in range(turns_per_client):
            await turn(system, f"{prefix}-{client}-{i}")

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(clients)))
    return clients * turns_per_client / (time.perf_counter() - start)


async def warm_up(system: System, plan: Plan) -> None:
    """Sequential and concurrent turns, so that first-call costs stay out of the figures."""
    await sequential(system, plan.warmup_turns, f"peers-warm-{system.key}")
    await concurrent(system, plan.clients, 2, f"peers-warm-{system.key}-c")


async def measure(system: System, round_no: int, plan: Plan) -> Figures:
    """One round of one system."""
    prefix = f"peers-r{round_no}-{system.key}"
    timings = await sequential(system, plan.sequential_turns, f"{prefix}-seq")
    server_before, client_before = system.cpu_seconds(), time.process_time()
    turns_per_s = await concurrent(system, plan.clients, plan.turns_per_client, f"{prefix}-conc")
    turns = plan.clients * plan.turns_per_client
    first = [t.first_s * 1000 for t in timings]
    last = [t.last_s * 1000 for t in timings]
    end = [t.end_s * 1000 for t in timings]
    return Figures(
        key=system.key,
        round_no=round_no,
        first_p50_ms=percentile(first, 50),
        first_p99_ms=percentile(first, 99),
        last_p50_ms=percentile(last, 50),
        last_p99_ms=percentile(last, 99),
        end_p50_ms=percentile(end, 50),
        turns_per_s=turns_per_s,
        server_cpu_ms_per_turn=(system.cpu_seconds() - server_before) * 1000 / turns,
        client_cpu_ms_per_turn=(time.process_time() - client_before) * 1000 / turns,
        rss_mib=system.rss_mib(),
    )


def median_of(rounds: Sequence[Figures]) -> Figures:
    """Each figure's median across `rounds` of one system (figure by figure, not one real round)."""

    def med(pick: Callable[[Figures], float]) -> float:
        return statistics.median(pick(r) for r in rounds)

    processes = rounds[0].rss_mib.keys()
    return Figures(
        key=rounds[0].key,
        round_no=0,
        first_p50_ms=med(lambda r: r.first_p50_ms),
        first_p99_ms=med(lambda r: r.first_p99_ms),
        last_p50_ms=med(lambda r: r.last_p50_ms),
        last_p99_ms=med(lambda r: r.last_p99_ms),
        end_p50_ms=med(lambda r: r.end_p50_ms),
        turns_per_s=med(lambda r: r.turns_per_s),
        server_cpu_ms_per_turn=med(lambda r: r.server_cpu_ms_per_turn),
        client_cpu_ms_per_turn=med(lambda r: r.client_cpu_ms_per_turn),
        rss_mib={p: statistics.median(r.rss_mib[p] for r in rounds) for p in processes},
    )


def rotated(systems: Sequence[System], round_no: int) -> list[System]:
    """The systems in round `round_no`'s order: the list rotated by one per round."""
    shift = (round_no - 1) % len(systems) if systems else 0
    return [*systems[shift:], *systems[:shift]]


async def run_rounds(
    systems: Sequence[System], plan: Plan, on_figures: Callable[[Figures], None]
) -> dict[str, list[Figures]]:
    """Warm every system up, then `plan.rounds` alternating rounds; every round's figures by system."""
    for system in systems:
        await warm_up(system, plan)
    results: dict[str, list[Figures]] = {s.key: [] for s in systems}
    for round_no in range(1, plan.rounds + 1):
        for system in rotated(systems, round_no):
            figures = await measure(system, round_no, plan)
            results[system.key].append(figures)
            on_figures(figures)
    return results
