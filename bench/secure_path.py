"""Benchmark: what transport security costs on the direct agent path ([6/13] item 2).

Run it by hand from the repository root (it is never part of the tests):

    .venv/bin/python bench/secure_path.py [--rounds N]
    .venv/bin/python bench/secure_path.py --quick    # smoke run, figures meaningless

It takes about 2 minutes on 2 cores.

Method. Four `meshscope serve agents --agents echo` processes, the same runtime, differing
only in their transport settings, each driven through the channel factory with the matching
client settings:

- plaintext: the default;
- token:     MESHSCOPE_MESH_TOKEN on both sides (the client interceptor adds the metadata,
             the server interceptor checks it on every call);
- tls:       the server's certificate, the client verifies it with the CA;
- mtls+token: mutual TLS (MESHSCOPE_TLS_CLIENT_AUTH=require, a client certificate) and the token:
             everything on, as a mesh across machines runs.

Every turn carries no session (the runtime keeps nothing), so what differs is the transport.
Rounds alternate the four targets; each round measures, per target, 1 client running
SEQUENTIAL turns back to back (p50/p99 time to the first and last of the 24 events) and 64
coroutines on one channel running TURNS_PER_CLIENT turns each (turns/s), plus the server's
CPU per turn over that phase. Figures are medians across rounds, and ratios to plaintext in
the same run: the machines are shared and noisy. Connections are made once per target
(warm-up), so the TLS handshake is not in the per-turn figures; the cost of one handshake
is measured apart (HANDSHAKES fresh channels, each making one health check).

Target (ours, not the issue's): everything on costs at most 15 % of the plaintext throughput.
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
from dataclasses import dataclass

from bench.load import LatencySummary, LoadClient, median_latency, positive_int, summarize, verdict
from bench.processes import ServerProcess, start_agent_server
from bench.workload import ECHO_AGENT
from meshscope.channels import ChannelSettings
from meshscope.config import Config
from meshscope.security import Security
from meshscope.testing import TestCA, health_status

ROUNDS = 5
WARMUP_TURNS = 30
SEQUENTIAL_TURNS = 300
CLIENTS = 64
TURNS_PER_CLIENT = 20
HANDSHAKES = 50
TOKEN = "bench-mesh-token-0123456789abcdef"
COST_TARGET = 0.85


@dataclass(frozen=True)
class Plan:
    rounds: int = ROUNDS
    sequential_turns: int = SEQUENTIAL_TURNS
    clients: int = CLIENTS
    turns_per_client: int = TURNS_PER_CLIENT
    handshakes: int = HANDSHAKES


@dataclass(frozen=True)
class Variant:
    """One transport setting: the server's variables and the client's."""

    label: str
    server_env: Mapping[str, str]
    client_env: Mapping[str, str]


@dataclass
class Target:
    variant: Variant
    server: ServerProcess
    client: LoadClient
    settings: ChannelSettings


@dataclass(frozen=True)
class RoundResult:
    label: str
    latency: LatencySummary
    turns_per_s: float
    server_cpu_ms_per_turn: float


def variants(ca: TestCA) -> list[Variant]:
    token = {"MESHSCOPE_MESH_TOKEN": TOKEN}
    server = ca.issue("echo")
    client = ca.issue("bench-client", client=True)
    return [
        Variant("plaintext", {}, {}),
        Variant("token", token, token),
        Variant("tls", ca.server_env(server), ca.client_env()),
        Variant(
            "mtls+token",
            {**ca.server_env(server, require_client_auth=True), **token},
            {**ca.client_env(client), **token},
        ),
    ]


async def measure_round(target: Target, round_no: int, plan: Plan) -> RoundResult:
    timings = await target.client.sequential(plan.sequential_turns, f"r{round_no}")
    before = target.server.cpu_seconds()
    turns_per_s = await target.client.concurrent(plan.clients, plan.turns_per_client, f"r{round_no}-c")
    turns = plan.clients * plan.turns_per_client
    return RoundResult(
        target.variant.label,
        summarize(timings),
        turns_per_s,
        (target.server.cpu_seconds() - before) * 1000 / turns,
    )


async def handshake_ms(target: Target, count: int) -> float:
    """Median ms of a fresh channel's first call (connect, TLS handshake, one health check)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        status = await health_status(target.server.address, settings=target.settings, timeout=10)
        times.append((time.perf_counter() - start) * 1000)
        if status != "SERVING":
            raise RuntimeError(f"{target.variant.label}: health check answered {status}")
    return statistics.median(times)


async def run(plan: Plan) -> None:
    with tempfile.TemporaryDirectory(prefix="meshscope-bench-pki-") as pki, ExitStack() as stack:
        ca = TestCA(Path(pki))
        targets = []
        for variant in variants(ca):
            server = start_agent_server(variant.label, ECHO_AGENT, env=variant.server_env)
            stack.callback(server.stop)
            settings = ChannelSettings(
                security=Security.from_config(Config(variant.client_env), serving=False)
            )
            client = LoadClient(server.address, ECHO_AGENT, sessions=False, settings=settings)
            targets.append(Target(variant, server, client, settings))
        for target in targets:
            await target.client.sequential(WARMUP_TURNS, "warmup")
            await target.client.concurrent(plan.clients, 2, "warmup-c")
        results: dict[str, list[RoundResult]] = {t.variant.label: [] for t in targets}
        columns = "".join(f"{c:>10}" for c in ("first p50", "last p50", "last p99"))
        print(f"{'round':<6}{'target':<12}{columns}{'turns/s':>9}{'srv CPU/t':>11}")
        for round_no in range(1, plan.rounds + 1):
            for target in targets:
                r = await measure_round(target, round_no, plan)
                results[r.label].append(r)
                print(
                    f"{round_no:<6}{r.label:<12}{r.latency.first_p50_ms:>10.2f}{r.latency.last_p50_ms:>10.2f}"
                    f"{r.latency.last_p99_ms:>10.2f}{r.turns_per_s:>9.0f}{r.server_cpu_ms_per_turn:>11.2f}",
                    flush=True,
                )
        handshakes = {t.variant.label: await handshake_ms(t, plan.handshakes) for t in targets}
        for target in targets:
            await target.client.close()
    print()
    print(f"medians of {plan.rounds} round(s); ratios to plaintext in this run")
    base = statistics.median(r.turns_per_s for r in results["plaintext"])
    for label, rounds in results.items():
        latency = median_latency([r.latency for r in rounds])
        tps = statistics.median(r.turns_per_s for r in rounds)
        cpu = statistics.median(r.server_cpu_ms_per_turn for r in rounds)
        print(
            f"{label:<12} first p50 {latency.first_p50_ms:.2f} ms, last p50 {latency.last_p50_ms:.2f} / "
            f"p99 {latency.last_p99_ms:.2f} ms, {tps:.0f} turns/s ({tps / base:.2f}x), server CPU "
            f"{cpu:.2f} ms/turn, new connection + first call {handshakes[label]:.2f} ms"
        )
    everything = statistics.median(r.turns_per_s for r in results["mtls+token"]) / base
    print(
        f"target: mtls+token >= {COST_TARGET:.2f}x plaintext throughput: {everything:.2f}x "
        f"{verdict(everything >= COST_TARGET)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=positive_int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny counts, meaningless figures")
    args = parser.parse_args()
    plan = Plan(rounds=args.rounds)
    if args.quick:
        plan = Plan(rounds=1, sequential_turns=10, clients=4, turns_per_client=2, handshakes=3)
    asyncio.run(run(plan))


if __name__ == "__main__":
    main()
