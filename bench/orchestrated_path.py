"""Benchmark: the orchestrated path against a raw `grpc.aio` 2-hop relay.

Run it by hand from the repository root (it is never part of the tests):

    .venv/bin/python bench/orchestrated_path.py            # full run
    .venv/bin/python bench/orchestrated_path.py --quick    # smoke run, figures meaningless
    .venv/bin/python bench/orchestrated_path.py --baseline-tree ../other-checkout   # A/B two code trees

Method. Every server runs in its own process; this process is the client
(grpc.aio, generated `Orchestrator` stub, one channel per server):

- agents: `meshscope serve agents --agents echo` (the echo agent, 20
  text_delta chunks per turn) and `meshscope serve agents --agents analyst
  --model scripted:delay_ms=1500` (for the open-runs section);
- orchestrator: `meshscope serve orchestrator -f <mesh>` with the mesh
  `agents: [echo, analyst]` and static discovery
  (MESHSCOPE_STATIC_ENDPOINTS="echo=ADDR;analyst=ADDR");
- relay (the baseline): this file with `--serve-relay AGENT_ADDRESS`, a raw
  `grpc.aio` server implementing `Orchestrator.Run` that, per request, opens
  an `AgentService.Invoke` stream to the SAME echo agent process (one shared
  channel) and wraps each AgentEvent into a RunEvent (step/agent "echo",
  replica "x", sequence n). No pool, no pipelines, no validation, and no
  run_start/run_end events (the orchestrator sends those two as well).

Both servers get the same request: target "echo", input "compare grpc and
rest for agents", a fresh session id per call. Rounds alternate relay,
orchestrator, relay, ... and each round measures, per server:

- 1 client: SEQUENTIAL turns back to back; p50/p99 time to the first agent
  text_delta event and to the last event of the stream;
- 64 clients: 64 coroutines sharing the one channel, TURNS_PER_CLIENT turns
  each; turns/s;
- the server's CPU (utime+stime of its process) per turn over the 64-client
  phase (clock ticks of 10 ms, over hundreds of turns);
- the server's RSS (VmRSS) after the load.

A/B of two code trees (`--baseline-tree DIR`): a second orchestrator is started
from DIR (another checkout with its own `make setup`: its `.venv` interpreter,
its code on PYTHONPATH) in front of the same agent processes, and every round
measures relay, then the two orchestrators (their order swapped every other
round), so both trees' figures come from the same rounds on the same machine;
the new/baseline ratios of throughput, added latency and CPU per turn are
printed per round and as medians.

Quoted figures are medians across rounds and ratios orchestrator/relay of
those medians. "Added per hop" is orchestrator minus relay (p50, p99) for
the last event: both paths have the same two hops (client -> server ->
agent), so the difference is what the orchestrator adds on top of a bare
relay hop.

Open runs: OPEN_RUNS concurrent `Run` calls through the orchestrator,
target "analyst" on an agent whose scripted model pauses 1.5 s before each
word (`--model scripted:delay_ms=1500`: ~15 words, ~20 s per run, few events,
so one agent process can keep all of them open), spread over a few channels.
Once every run has received its first agent event (all open at once), the
orchestrator's RSS is read; then the runs finish and errors are counted.

Targets (from the issue): orchestrator throughput >= 0.7x the relay's;
<= 1.5 ms p50 and <= 3 ms p99 added per hop; OPEN_RUNS open runs with 0
errors and orchestrator RSS <= 300 MB. Each prints PASS or MISS; the exit
status is 0 regardless.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import count

import grpc

from bench.load import (
    LatencySummary,
    TimedClient,
    TurnTiming,
    median_latency,
    positive_int,
    summarize,
    verdict,
)
from bench.processes import REPO, ServerProcess, child_env, start_agent_server, start_server, tree_command
from bench.workload import CHUNKS
from meshscope.channels import ChannelSettings, open_channel
from meshscope.cli.launch import launch
from meshscope.v1 import agent_pb2, agent_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import user_message

ROUNDS = 3
WARMUP_TURNS = 30
SEQUENTIAL_TURNS = 200
CLIENTS = 64
TURNS_PER_CLIENT = 10
OPEN_RUNS = 1000
OPEN_RUN_CHANNELS = 4
INPUT_TEXT = "compare grpc and rest for agents"
HOLD_TEXT = "hold this run open"
ECHO = "echo"
ANALYST = "analyst"
RELAY_READY = "meshscope: serving relay on"
THROUGHPUT_TARGET = 0.7
ADDED_P50_TARGET_MS = 1.5
ADDED_P99_TARGET_MS = 3.0
RSS_TARGET_MB = 300.0
OPEN_WAIT_S = 120.0


# ---------------------------------------------------------------- the raw relay


class RawRelayServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    """`Orchestrator.Run` as a bare relay to one agent address: wrap and forward."""

    def __init__(self, agent_address: str) -> None:
        self._channel = open_channel(agent_address, ChannelSettings())
        self._stub = agent_pb2_grpc.AgentServiceStub(self._channel)

    async def Run(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.RunEvent]:
        invoke = agent_pb2.InvokeRequest(
            agent=request.target, input=request.input, session_id=request.session_id
        )
        run_id = uuid.uuid4().hex
        sequence = count(1)
        async for event in self._stub.Invoke(invoke):
            yield orchestrator_pb2.RunEvent(
                sequence=next(sequence), run_id=run_id, step=ECHO, agent=ECHO, replica="x", agent_event=event
            )


async def serve_relay(agent_address: str) -> None:
    """Serve the relay until SIGTERM/SIGINT, announcing the address on stdout."""
    from bench.baseline_server import serve

    def register(server: grpc.aio.Server) -> None:
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(RawRelayServicer(agent_address), server)

    await serve(register, RELAY_READY)


# ---------------------------------------------------------------- the client


def run_request(target: str, text: str, session_id: str) -> orchestrator_pb2.RunRequest:
    return orchestrator_pb2.RunRequest(target=target, input=user_message(text), session_id=session_id)


def is_text_delta(event: orchestrator_pb2.RunEvent) -> bool:
    return event.HasField("agent_event") and event.agent_event.HasField("text_delta")


class RunClient(TimedClient):
    """One channel to one Orchestrator-shaped server; every call runs target `ECHO`."""

    def __init__(self, address: str, target: str = ECHO, text: str = INPUT_TEXT) -> None:
        self.target = target
        self.text = text
        self._channel = open_channel(address, ChannelSettings())
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def timed_turn(self, session_id: str) -> TurnTiming:
        """One run, timed at its first text_delta and at its last event."""
        start = time.perf_counter()
        first = last = 0.0
        deltas = 0
        async for event in self._stub.Run(run_request(self.target, self.text, session_id)):
            last = time.perf_counter()
            if event.HasField("error"):
                raise RuntimeError(f"run failed: {event.error}")
            if is_text_delta(event):
                deltas += 1
                if not first:
                    first = last
        if deltas != CHUNKS:
            raise RuntimeError(f"expected {CHUNKS} text_delta events, got {deltas}")
        return TurnTiming(first - start, last - start)


# ---------------------------------------------------------------- plan and results


@dataclass(frozen=True)
class Plan:
    rounds: int = ROUNDS
    sequential_turns: int = SEQUENTIAL_TURNS
    clients: int = CLIENTS
    turns_per_client: int = TURNS_PER_CLIENT
    open_runs: int = OPEN_RUNS


@dataclass(frozen=True)
class RoundResult:
    label: str
    latency: LatencySummary
    turns_per_s: float
    rss_mib: float
    cpu_ms_per_turn: float
    """The server process's CPU (user + system) per turn over the concurrent phase."""


@dataclass(frozen=True)
class Target:
    label: str
    server: ServerProcess
    client: RunClient


@dataclass(frozen=True)
class OpenRunsResult:
    requested: int
    open_peak: int
    errors: int
    rss_peak_mib: float
    all_open_s: float
    total_s: float
    first_error: str


async def measure_round(target: Target, round_no: int, plan: Plan) -> RoundResult:
    prefix = f"bench-orch-r{round_no}-{target.label}"
    timings = await target.client.sequential(plan.sequential_turns, f"{prefix}-seq")
    cpu_before = target.server.cpu_seconds()
    tps = await target.client.concurrent(plan.clients, plan.turns_per_client, f"{prefix}-conc")
    cpu_ms = (target.server.cpu_seconds() - cpu_before) * 1000 / (plan.clients * plan.turns_per_client)
    return RoundResult(target.label, summarize(timings), tps, target.server.rss_mib(), cpu_ms)


def median_result(label: str, results: Sequence[RoundResult]) -> RoundResult:
    def med(pick: Callable[[RoundResult], float]) -> float:
        return statistics.median(pick(r) for r in results)

    return RoundResult(
        label,
        median_latency([r.latency for r in results]),
        med(lambda r: r.turns_per_s),
        med(lambda r: r.rss_mib),
        med(lambda r: r.cpu_ms_per_turn),
    )


ROW = "{:<5} {:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}"


def print_row(round_label: str, r: RoundResult) -> None:
    lat = r.latency
    print(
        ROW.format(
            round_label,
            r.label,
            f"{lat.first_p50_ms:.2f}",
            f"{lat.first_p99_ms:.2f}",
            f"{lat.last_p50_ms:.2f}",
            f"{lat.last_p99_ms:.2f}",
            f"{r.turns_per_s:.0f}",
            f"{r.rss_mib:.1f}",
            f"{r.cpu_ms_per_turn:.2f}",
        ),
        flush=True,
    )


async def open_runs(orchestrator: ServerProcess, plan: Plan) -> OpenRunsResult:
    """`plan.open_runs` concurrent analyst runs; RSS once all are open; errors once all are done."""
    channels = [open_channel(orchestrator.address, ChannelSettings()) for _ in range(OPEN_RUN_CHANNELS)]
    stubs = [orchestrator_pb2_grpc.OrchestratorStub(c) for c in channels]
    opened = 0
    all_open = asyncio.Event()
    errors: list[str] = []

    async def one(i: int) -> None:
        nonlocal opened
        seen = False
        try:
            request = run_request(ANALYST, HOLD_TEXT, f"bench-open-{i}-{uuid.uuid4().hex[:8]}")
            async for event in stubs[i % len(stubs)].Run(request, timeout=OPEN_WAIT_S + 60):
                # Open = the agent's stream has begun (not just the orchestrator's run_start).
                if not seen and event.HasField("agent_event"):
                    seen = True
                    opened += 1
                    if opened == plan.open_runs:
                        all_open.set()
                if event.HasField("error"):
                    errors.append(f"error event: {event.error}")
                    return
            if not seen:
                errors.append("no events")
        except grpc.aio.AioRpcError as exc:
            errors.append(f"{exc.code().name}: {exc.details()}")
        except Exception as exc:
            errors.append(repr(exc))

    start = time.perf_counter()
    tasks = [asyncio.create_task(one(i)) for i in range(plan.open_runs)]
    peak_open = 0
    rss_peak = orchestrator.rss_mib()
    done_all: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*tasks))
    try:
        waiter: asyncio.Future[object] = asyncio.ensure_future(all_open.wait())
        deadline = start + OPEN_WAIT_S
        while not waiter.done() and not done_all.done() and time.perf_counter() < deadline:
            await asyncio.wait({waiter, done_all}, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
            rss_peak = max(rss_peak, orchestrator.rss_mib())
            peak_open = max(peak_open, opened - len([t for t in tasks if t.done()]))
        all_open_s = time.perf_counter() - start
        rss_peak = max(rss_peak, orchestrator.rss_mib())
        peak_open = max(peak_open, opened - len([t for t in tasks if t.done()]))
        waiter.cancel()
        await done_all
    finally:
        for channel in channels:
            await channel.close()
    return OpenRunsResult(
        plan.open_runs,
        peak_open,
        len(errors),
        rss_peak,
        all_open_s,
        time.perf_counter() - start,
        errors[0] if errors else "",
    )


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class Servers:
    echo: ServerProcess
    analyst: ServerProcess
    orchestrator: ServerProcess
    relay: ServerProcess
    baseline: ServerProcess | None = None
    """The orchestrator of `--baseline-tree`, if one was given."""


def start_orchestrator(
    stack: ExitStack, echo: str, analyst: str, tree: Path = REPO, label: str = "orchestrator"
) -> ServerProcess:
    """`meshscope serve orchestrator` from the code tree `tree` (its own `.venv`, its code first on
    PYTHONPATH) with static discovery of the two agents."""
    mesh_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="meshscope-bench-"))
    mesh = Path(mesh_dir) / "mesh.yaml"
    mesh.write_text(f"agents: [{ECHO}, {ANALYST}]\n")
    env = child_env(tree=tree) | {"MESHSCOPE_STATIC_ENDPOINTS": f"{ECHO}={echo};{ANALYST}={analyst}"}
    command = tree_command(tree, "serve", "orchestrator", "-f", str(mesh), "--port", "0")
    return ServerProcess(label, launch(command, env, cwd=tree))


def start_servers(stack: ExitStack, baseline_tree: Path | None = None) -> Servers:
    def started(server: ServerProcess) -> ServerProcess:
        stack.callback(server.stop)
        return server

    echo = started(start_agent_server("echo agent", ECHO))
    analyst = started(start_agent_server("analyst agent", ANALYST, "--model", "scripted:delay_ms=1500"))
    orchestrator = started(start_orchestrator(stack, echo.address, analyst.address))
    relay = started(start_server("relay", [str(Path(__file__).resolve()), "--serve-relay", echo.address]))
    baseline = None
    if baseline_tree is not None:
        baseline = started(
            start_orchestrator(stack, echo.address, analyst.address, baseline_tree, "orch-base")
        )
    for s in (echo, analyst, orchestrator, relay, baseline):
        if s is not None:
            print(f"  {s.label:<14} pid {s.pid:<7} {s.address}")
    return Servers(echo, analyst, orchestrator, relay, baseline)


async def bench(plan: Plan, servers: Servers) -> None:
    relay = Target("relay", servers.relay, RunClient(servers.relay.address))
    orch = Target("orchestrator", servers.orchestrator, RunClient(servers.orchestrator.address))
    targets = [relay, orch]
    if servers.baseline is not None:
        targets.insert(1, Target("orch-base", servers.baseline, RunClient(servers.baseline.address)))
    try:
        for target in targets:
            await target.client.sequential(WARMUP_TURNS, f"bench-warm-{target.label}")
            await target.client.concurrent(plan.clients, 2, f"bench-warm-{target.label}-c")
        print(
            f"\n{plan.rounds} round(s), alternating; 1 client x {plan.sequential_turns} sequential turns, "
            f"{plan.clients} clients x {plan.turns_per_client} turns (one channel)"
        )
        print(
            ROW.format(
                "round",
                "server",
                "first p50",
                "first p99",
                "last p50",
                "last p99",
                "turns/s",
                "RSS MiB",
                "CPU/turn",
            )
        )
        print(ROW.format("", "", "ms", "ms", "ms", "ms", f"{plan.clients} cl.", "after", "ms"))
        results: dict[str, list[RoundResult]] = {target.label: [] for target in targets}
        for round_no in range(1, plan.rounds + 1):
            # With a baseline tree, its orchestrator and ours swap places every other round: a
            # round's later measurements meet an agent holding more sessions.
            order = targets if round_no % 2 else [targets[0], *reversed(targets[1:])]
            for target in order:
                result = await measure_round(target, round_no, plan)
                results[target.label].append(result)
                print_row(str(round_no), result)
    finally:
        for target in targets:
            await target.client.close()
    base = median_result(relay.label, results[relay.label])
    med = median_result(orch.label, results[orch.label])
    print(ROW.format(*["-----"] * 9))
    print_row("med", base)
    if servers.baseline is not None:
        print_row("med", median_result("orch-base", results["orch-base"]))
    print_row("med", med)

    def x(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "n/a"

    o, b = med.latency, base.latency
    print(
        ROW.format(
            "ratio", "orch/relay", x(o.first_p50_ms, b.first_p50_ms), x(o.first_p99_ms, b.first_p99_ms),
            x(o.last_p50_ms, b.last_p50_ms), x(o.last_p99_ms, b.last_p99_ms),
            x(med.turns_per_s, base.turns_per_s), x(med.rss_mib, base.rss_mib),
            x(med.cpu_ms_per_turn, base.cpu_ms_per_turn),
        )
    )  # fmt: skip
    paired = [
        r_o.turns_per_s / r_b.turns_per_s
        for r_b, r_o in zip(results[relay.label], results[orch.label], strict=True)
    ]
    print(f"throughput ratio per round (orchestrator/relay): {', '.join(f'{p:.2f}' for p in paired)}")
    added_p50 = o.last_p50_ms - b.last_p50_ms
    added_p99 = o.last_p99_ms - b.last_p99_ms
    added_first_p50 = o.first_p50_ms - b.first_p50_ms
    added_first_p99 = o.first_p99_ms - b.first_p99_ms
    print(
        f"added per hop (orchestrator - relay): last event p50 {added_p50:+.2f} ms, p99 {added_p99:+.2f} ms; "
        f"first text_delta p50 {added_first_p50:+.2f} ms, p99 {added_first_p99:+.2f} ms"
    )
    if servers.baseline is not None:
        print_a_b(results, relay.label, "orch-base", orch.label)

    print(
        f"\nOpen runs: {plan.open_runs} concurrent Run calls (target {ANALYST!r}, {HOLD_TEXT!r}, "
        f"scripted model) over {OPEN_RUN_CHANNELS} channels",
        flush=True,
    )
    rss_before = servers.orchestrator.rss_mib()
    held = await open_runs(servers.orchestrator, plan)
    print(
        f"  open at once (peak): {held.open_peak}/{held.requested} (all open after {held.all_open_s:.1f} s); "
        f"errors: {held.errors}; all done after {held.total_s:.1f} s"
    )
    print(
        f"  orchestrator RSS: {rss_before:.1f} MiB before, {held.rss_peak_mib:.1f} MiB peak "
        f"({held.rss_peak_mib * 1.048576:.1f} MB), {servers.orchestrator.rss_mib():.1f} MiB after"
    )
    if held.first_error:
        print(f"  first error: {held.first_error}")

    ratio = med.turns_per_s / base.turns_per_s if base.turns_per_s else 0.0
    rss_mb = held.rss_peak_mib * 1.048576
    print("\nTargets:")
    print(f"  {verdict(ratio >= THROUGHPUT_TARGET)}  throughput {ratio:.2f}x relay (>= {THROUGHPUT_TARGET}x)")
    print(
        f"  {verdict(added_p50 <= ADDED_P50_TARGET_MS)}  added p50 {added_p50:+.2f} ms "
        f"(<= {ADDED_P50_TARGET_MS} ms)"
    )
    print(
        f"  {verdict(added_p99 <= ADDED_P99_TARGET_MS)}  added p99 {added_p99:+.2f} ms "
        f"(<= {ADDED_P99_TARGET_MS} ms)"
    )
    ok_open = held.open_peak >= held.requested and held.errors == 0
    print(
        f"  {verdict(ok_open)}  {held.open_peak}/{held.requested} runs open at once, {held.errors} errors "
        f"(all open, 0 errors)"
    )
    print(
        f"  {verdict(rss_mb <= RSS_TARGET_MB)}  orchestrator RSS at peak {rss_mb:.1f} MB "
        f"(<= {RSS_TARGET_MB:.0f} MB)"
    )
    if plan.open_runs != OPEN_RUNS:
        print(f"  (note: {plan.open_runs} open runs, not {OPEN_RUNS}: a --quick or --open-runs run)")


def print_a_b(results: dict[str, list[RoundResult]], relay: str, before: str, after: str) -> None:
    """This tree's orchestrator against the baseline tree's, from the same rounds."""

    def added(label: str, r: int) -> float:
        return results[label][r].latency.last_p50_ms - results[relay][r].latency.last_p50_ms

    rounds = range(len(results[relay]))
    print(f"\nA/B, per round ({before} -> {after}; same rounds, same agent processes):")
    for r in rounds:
        b, a = results[before][r], results[after][r]
        print(
            f"  round {r + 1}: turns/s {b.turns_per_s:.0f} -> {a.turns_per_s:.0f} "
            f"({a.turns_per_s / b.turns_per_s:.2f}x); added p50 {added(before, r):+.2f} -> "
            f"{added(after, r):+.2f} ms; CPU/turn {b.cpu_ms_per_turn:.2f} -> {a.cpu_ms_per_turn:.2f} ms"
        )
    ratio = statistics.median(results[after][r].turns_per_s / results[before][r].turns_per_s for r in rounds)
    added_before = statistics.median(added(before, r) for r in rounds)
    added_after = statistics.median(added(after, r) for r in rounds)
    cpu_before = statistics.median(x.cpu_ms_per_turn for x in results[before])
    cpu_after = statistics.median(x.cpu_ms_per_turn for x in results[after])
    print(
        f"  median: throughput {ratio:.2f}x; added p50 {added_before:+.2f} -> {added_after:+.2f} ms; "
        f"CPU/turn {cpu_before:.2f} -> {cpu_after:.2f} ms"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the orchestrated path against a raw 2-hop relay.")
    parser.add_argument("--serve-relay", metavar="AGENT_ADDRESS", help="internal: run the raw relay server")
    parser.add_argument(
        "--rounds", type=positive_int, default=ROUNDS, help=f"alternating rounds (default {ROUNDS})"
    )
    parser.add_argument("--open-runs", type=positive_int, help=f"concurrent open runs (default {OPEN_RUNS})")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures not meaningful)")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        metavar="DIR",
        help="another checkout (with its own `make setup`) whose orchestrator is measured in the same rounds",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_relay:
        asyncio.run(serve_relay(args.serve_relay))
        return 0
    plan = Plan(rounds=args.rounds)
    if args.quick:
        plan = Plan(rounds=1, sequential_turns=30, clients=8, turns_per_client=4, open_runs=200)
    if args.open_runs is not None:
        plan = Plan(plan.rounds, plan.sequential_turns, plan.clients, plan.turns_per_client, args.open_runs)
    started = time.monotonic()
    print(
        f"meshscope bench: orchestrated path | {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f} "
        f"at start, Python {platform.python_version()}, grpcio {grpc.__version__}",
        flush=True,
    )
    with ExitStack() as stack:
        asyncio.run(bench(plan, start_servers(stack, args.baseline_tree and args.baseline_tree.resolve())))
    print(f"\n(finished in {time.monotonic() - started:.0f} s; servers stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
