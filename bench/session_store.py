"""Per-turn cost of the session store: in memory against Redis, same run.

A turn with a session takes the (session, agent) lock, loads the state,
runs, saves the state, appends the transcript and releases the lock. This
runs the echo agent's turns through the real `TurnRunner` (no gRPC) on both
backends, alternating batches, and reports wall and CPU time per turn and
the difference: what the Redis round trips cost. A fresh redis-server with AOF
is started for the run (appendfsync everysec, Redis's default; `--fsync always`
is how the tests run it).

Run: `make bench`, or `.venv/bin/python bench/session_store.py [--turns N] [--batches N] [--fsync P]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import statistics
import time
from typing import Any

from redis.asyncio.connection import Connection

from bench.load import positive_int
from meshscope.services.catalog import load_definition
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.messages import message_to_msg
from meshscope.services.runtime.redis_store import RedisSessionStore
from meshscope.services.runtime.state import InMemorySessionStore, SessionStore
from meshscope.services.runtime.stores import StoreSettings
from meshscope.services.runtime.turn import Turn, TurnRunner
from meshscope.testing import RedisDevServer
from meshscope.v1 import common_pb2


class CountingConnection(Connection):
    """A redis-py connection that counts the requests it sends: one per round trip (a
    pipeline or a script is one). Counted on the client because Redis's own counters
    also count the commands a script runs."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


def counting(store: RedisSessionStore) -> RedisSessionStore:
    """`store`, its connections counting round trips (set before it opens any)."""
    store._client.connection_pool.connection_class = CountingConnection  # bench-only instrumentation
    return store


async def batch(runner: TurnRunner, agent: HostedAgent, label: str, turns: int) -> tuple[float, float]:
    """Wall and CPU ms per turn over `turns` sequential turns, two per session."""
    text = common_pb2.Message(
        role=common_pb2.ROLE_USER, parts=[common_pb2.Part(text="compare grpc and rest")]
    )
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(turns):
        turn = Turn(agent, message_to_msg(text), f"{label}-{i // 2}", "bench")
        async for _ in runner.run(turn):
            pass
    return (time.perf_counter() - wall) * 1000 / turns, (time.process_time() - cpu) * 1000 / turns


async def main(turns: int, batches: int, fsync: str) -> None:
    agent = HostedAgent(load_definition("echo"), None)
    async with RedisDevServer(fsync=fsync) as redis_server:  # its folder is removed afterwards
        stores: dict[str, SessionStore] = {
            "memory": InMemorySessionStore(),
            "redis": counting(RedisSessionStore(StoreSettings(redis_url=redis_server.url))),
        }
        runners = {name: TurnRunner(store) for name, store in stores.items()}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
        try:
            for name, runner in runners.items():
                await batch(runner, agent, f"warm-{name}", 50)
            sent_before = CountingConnection.sent
            for b in range(batches):
                for name, runner in runners.items():
                    results[name].append(await batch(runner, agent, f"{name}-{b}", turns))
            round_trips = (CountingConnection.sent - sent_before) / (batches * turns)
        finally:
            for store in stores.values():
                await store.close()
    print(f"echo turns with a session (lock, load, run, save, history, unlock), {batches} x {turns}, no gRPC")
    print(f"  Redis round trips per turn: {round_trips:.2f} (target: at most 3)")
    medians = {}
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        medians[name] = (wall, cpu)
        print(
            f"  {name:<7} wall {wall:6.3f} ms/turn   cpu {cpu:6.3f} ms/turn   (wall per batch: "
            + ", ".join(f"{r[0]:.3f}" for r in rows)
            + ")"
        )
    (mw, mc), (rw, rc) = medians["memory"], medians["redis"]
    print(f"  Redis adds {rw - mw:+.3f} ms wall and {rc - mc:+.3f} ms CPU per turn ({rw / mw:.2f}x wall)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=positive_int, default=400)
    parser.add_argument("--batches", type=positive_int, default=5)
    parser.add_argument(
        "--fsync", choices=("everysec", "always"), default="everysec", help="Redis AOF fsync policy"
    )
    args = parser.parse_args()
    print(f"redis-server with AOF, appendfsync {args.fsync}")
    asyncio.run(main(args.turns, args.batches, args.fsync))
