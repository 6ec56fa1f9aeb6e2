"""Benchmark: what transport security costs on the direct agent path ([6/13] item 2).

Run it by hand from the repository root (it is never part of the tests):

    .venv/bin/python bench/secure_path.py [--rounds N]
    .venv/bin/python bench/secure_path.py --quick    # smoke run, figures meaningless

It takes about 2 minutes on 2 cores.

Method. Four `meshscope serve agents --agents echo` processes, the same runtime, differing
only in their transport settings, each driven through the channel factory with the matching
client settings:

- plain:    the default, plaintext;
- token:    MESHSCOPE_MESH_TOKEN on both sides (the client interceptor adds the metadata,
            the server interceptor checks it on every call);
- tls:      the server's certificate, the client verifies it with the CA;
- mtls+tok: mutual TLS (MESHSCOPE_TLS_CLIENT_AUTH=require, a client certificate) and the
            token: everything on, as a mesh across machines runs.

Every turn carries no session (the runtime keeps nothing), so what differs is the transport.
The rounds, their measurements and their report are agent_path.py's (`run_rounds`): rounds
alternate the four targets; 1 client's sequential p50/p99 to the first and last event, 64
clients' turns/s on one channel, server and client CPU per turn; medians across rounds and
ratios to `plain` in the same run (the machines are shared and noisy). Connections are made
once per target (warm-up), so the TLS handshake is not in the per-turn figures; the cost of a
new connection is measured apart (HANDSHAKES fresh channels, each making one health check).

The issue sets no target for it; the figures are reported, with no PASS/MISS.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack

from bench.agent_path import Plan, Target, run_rounds, warm_up
from bench.load import LoadClient, positive_int
from bench.processes import ServerProcess, start_agent_server
from bench.workload import ECHO_AGENT
from meshscope.channels import ChannelSettings
from meshscope.config import Config
from meshscope.security import Security
from meshscope.testing import TestCA, health_status

HANDSHAKES = 50
TOKEN = "bench-mesh-token-0123456789abcdef"


def variants(ca: TestCA) -> dict[str, tuple[Mapping[str, str], Mapping[str, str]]]:
    """label -> (the server's variables, the client's)."""
    token = {"MESHSCOPE_MESH_TOKEN": TOKEN}
    server = ca.issue("echo")
    client = ca.issue("bench-client", client=True)
    return {
        "plain": ({}, {}),
        "token": (token, token),
        "tls": (ca.server_env(server), ca.client_env()),
        "mtls+tok": (
            {**ca.server_env(server, require_client_auth=True), **token},
            {**ca.client_env(client), **token},
        ),
    }


async def handshake_ms(server: ServerProcess, settings: ChannelSettings, count: int) -> float:
    """Median ms of a fresh channel's first call (connect, TLS handshake, one health check)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        status = await health_status(server.address, settings=settings, timeout=10)
        times.append((time.perf_counter() - start) * 1000)
        if status != "SERVING":
            raise RuntimeError(f"{server.label}: health check answered {status}")
    return statistics.median(times)


async def run(plan: Plan, handshakes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="meshscope-bench-pki-") as pki, ExitStack() as stack:
        targets: list[Target] = []
        settings: dict[str, ChannelSettings] = {}
        for label, (server_env, client_env) in variants(TestCA(Path(pki))).items():
            server = start_agent_server(label, ECHO_AGENT, env=server_env)
            stack.callback(server.stop)
            security = Security.from_config(Config(client_env), serving=False)
            settings[label] = ChannelSettings(security=security)
            client = LoadClient(server.address, ECHO_AGENT, sessions=False, settings=settings[label])
            targets.append(Target(label, server, client))
        for target in targets:
            await warm_up(target, plan)
        base, others, _ = await run_rounds(targets[0], targets[1:], plan)
        print(f"\nnew connection + first call (health check), median of {handshakes}:")
        for target in targets:
            cost = await handshake_ms(target.server, settings[target.label], handshakes)
            print(f"  {target.label:<9} {cost:6.2f} ms")
            await target.client.close()
    print("server CPU per turn under load, relative to plain (the steadiest figure on a shared machine):")
    for other in others:
        extra = other.server_cpu_ms_per_turn / base.server_cpu_ms_per_turn - 1
        print(f"  {other.label:<9} {extra:+.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=positive_int, default=Plan.rounds)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny counts, meaningless figures")
    args = parser.parse_args()
    if args.quick:
        asyncio.run(run(Plan(rounds=1, sequential_turns=10, clients=4, turns_per_client=2), 3))
    else:
        asyncio.run(run(Plan(rounds=args.rounds), HANDSHAKES))


if __name__ == "__main__":
    main()
