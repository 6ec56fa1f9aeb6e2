"""Benchmark: what traces and metrics cost the orchestrated path, and what "off" costs.

Run it by hand from the repository root (never part of the tests; `make bench` runs it):

    .venv/bin/python bench/telemetry_cost.py            # full run
    .venv/bin/python bench/telemetry_cost.py --quick    # smoke run, figures meaningless

Method. Three meshes side by side, each an agent process (`meshscope serve agents --agents analyst
--model scripted`: a real AgentScope agent, so with tracing on its TracingMiddleware spans too) and an
orchestrator in front of it (static discovery), differing only in their environment:

- off: no OTEL_* variable (the default: nothing exported, no SDK loaded);
- traces: OTEL_TRACES_EXPORTER=otlp to an OTLP receiver in its own process that discards what it
  gets (every span is made, batched and sent: the cost a traced mesh pays);
- traces+metrics: the same plus OTEL_METRICS_EXPORTER=otlp,prometheus.

This process is the one load generator. Each round measures every mesh in turn (the order rotates
per round): CLIENTS coroutines on one channel per mesh, TURNS_PER_CLIENT runs each, target
`analyst`, a fresh session per run (lock, load, save, transcript); turns/s, and the CPU (user +
system) of its two server processes per run. Quoted: medians over rounds, and ratios to `off` of
the same rounds.

"Off costs nothing measurable" is measured directly too: with telemetry off, what the mesh still
runs per run is its instruments' calls into the OpenTelemetry API's no-op proxies and the
`telemetry.enabled()` checks. Their time per run (timed here in a loop of OFF_CALLS runs) is
compared with the CPU a run costs the `off` mesh.
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
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import grpc

from bench.load import positive_int
from bench.processes import REPO, ServerProcess, child_env, start_agent_server, start_server
from meshscope.channels import ChannelSettings, open_channel
from meshscope.cli.launch import launch, meshscope_command
from meshscope.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import user_message

ROUNDS = 5
CLIENTS = 64
TURNS_PER_CLIENT = 10
WARMUP_TURNS = 30
OFF_CALLS = 200_000
TARGET = "analyst"


# ---------------------------------------------------------------- the OTLP sink


async def serve_sink() -> None:
    """An OTLP/gRPC receiver for traces and metrics that answers and discards."""
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request: object, context: object) -> object:  # noqa: N802
            return trace_service_pb2.ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        async def Export(self, request: object, context: object) -> object:  # noqa: N802
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"meshscope: serving sink on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


# ---------------------------------------------------------------- meshes and load


@dataclass
class Mesh:
    label: str
    agent: ServerProcess
    orchestrator: ServerProcess

    def cpu_seconds(self) -> float:
        return self.agent.cpu_seconds() + self.orchestrator.cpu_seconds()


def start_mesh(stack: ExitStack, label: str, env: Mapping[str, str]) -> Mesh:
    agent = start_agent_server(f"{label} agent", TARGET, "--model", "scripted", env=env)
    stack.callback(agent.stop)
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="meshscope-bench-"))
    mesh_file = Path(folder) / "mesh.yaml"
    mesh_file.write_text(f"agents: [{TARGET}]\n")
    command = meshscope_command("serve", "orchestrator", "-f", str(mesh_file), "--port", "0")
    process = launch(
        command, child_env({**env, "MESHSCOPE_STATIC_ENDPOINTS": f"{TARGET}={agent.address}"}), cwd=REPO
    )
    orchestrator = ServerProcess(f"{label} orchestrator", process)
    stack.callback(orchestrator.stop)
    return Mesh(label, agent, orchestrator)


async def run_once(stub: orchestrator_pb2_grpc.OrchestratorStub, session_id: str) -> None:
    request = orchestrator_pb2.RunRequest(
        target=TARGET, input=user_message("how are the figures"), session_id=session_id
    )
    last = None
    async for event in stub.Run(request):
        last = event
    if last is None or not last.HasField("run_end"):
        raise RuntimeError(f"the run did not end well: {last}")


async def load(address: str, clients: int, turns: int) -> float:
    """`clients` coroutines on one channel, `turns` runs each; runs per second."""
    channel = open_channel(address, ChannelSettings())
    stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
    try:
        for i in range(WARMUP_TURNS if clients > 1 else 1):
            await run_once(stub, f"warm-{uuid.uuid4().hex}-{i}")

        async def client() -> None:
            for _ in range(turns):
                await run_once(stub, uuid.uuid4().hex)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return clients * turns / (time.perf_counter() - began)
    finally:
        await channel.close()


@dataclass(frozen=True)
class Result:
    turns_per_s: float
    cpu_ms_per_turn: float


async def measure(mesh: Mesh, clients: int, turns: int) -> Result:
    before = mesh.cpu_seconds()
    rate = await load(mesh.orchestrator.address, clients, turns)
    return Result(rate, (mesh.cpu_seconds() - before) * 1000 / (clients * turns))


# ---------------------------------------------------------------- the off path, directly


def off_path_ns_per_run(calls: int) -> float:
    """The telemetry calls one run makes in the orchestrator and its agent with telemetry off
    (`orchestrator.runs`, `services.runtime.turn`, `services.runtime.hosted`), timed per run."""
    from meshscope import telemetry
    from meshscope.telemetry.instruments import (
        LOCK_WAIT,
        RUN_DURATION,
        RUNS_ACTIVE,
        TIME_TO_FIRST_EVENT,
        TOKENS,
    )

    telemetry.configure("bench", {})
    assert not telemetry.enabled()
    attributes = {"target": TARGET}
    began = time.perf_counter()
    for _ in range(calls):
        telemetry.enabled()  # the run's span?
        RUNS_ACTIVE.add(1, attributes)
        telemetry.enabled()  # the step's span?
        LOCK_WAIT.record(0.0001, {"agent": TARGET, "outcome": "taken"})
        TOKENS.record(27, {"gen_ai.request.model": "scripted", "gen_ai.token.type": "input"})
        TOKENS.record(6, {"gen_ai.request.model": "scripted", "gen_ai.token.type": "output"})
        TIME_TO_FIRST_EVENT.record(0.001, attributes)
        RUNS_ACTIVE.add(-1, attributes)
        RUN_DURATION.record(0.002, {**attributes, "status": "OK"})
    return (time.perf_counter() - began) * 1e9 / calls


# ---------------------------------------------------------------- main


async def bench(args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        sink = start_server("sink", [__file__, "--serve-sink"])
        stack.callback(sink.stop)
        endpoint = f"http://{sink.address}"
        traces = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        configurations = {
            "off": {},
            "traces": traces,
            "traces+metrics": {
                **traces,
                "OTEL_METRICS_EXPORTER": "otlp,prometheus",
                "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
                "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
            },
        }
        meshes = [start_mesh(stack, label, env) for label, env in configurations.items()]
        for mesh in meshes:
            print(f"  {mesh.label:<15} agent {mesh.agent.address}  orchestrator {mesh.orchestrator.address}")
        results: dict[str, list[Result]] = {mesh.label: [] for mesh in meshes}
        shape = f"{args.rounds} rounds of {args.clients} clients x {args.turns} runs"
        print(f"\n{shape}, target {TARGET!r} (scripted)")
        print(f"{'round':<6} {'mesh':<15} {'runs/s':>8} {'CPU ms/run':>11}")
        for round_no in range(args.rounds):
            order = meshes[round_no % len(meshes) :] + meshes[: round_no % len(meshes)]
            for mesh in order:
                result = await measure(mesh, args.clients, args.turns)
                results[mesh.label].append(result)
                figures = f"{result.turns_per_s:>8.1f} {result.cpu_ms_per_turn:>11.2f}"
                print(f"{round_no + 1:<6} {mesh.label:<15} {figures}")
    off_rate = statistics.median(r.turns_per_s for r in results["off"])
    off_cpu = statistics.median(r.cpu_ms_per_turn for r in results["off"])
    print(f"\nmedians ({args.rounds} rounds), ratios to `off` of the same run:")
    print(f"{'mesh':<15} {'runs/s':>8} {'x off':>7} {'CPU ms/run':>11} {'x off':>7}")
    for label, rows in results.items():
        rate = statistics.median(r.turns_per_s for r in rows)
        cpu = statistics.median(r.cpu_ms_per_turn for r in rows)
        print(f"{label:<15} {rate:>8.1f} {rate / off_rate:>7.2f} {cpu:>11.2f} {cpu / off_cpu:>7.2f}")
    per_run = off_path_ns_per_run(args.off_calls)
    share = per_run / (off_cpu * 1e6) * 100
    print(
        f"\noff path: {per_run / 1000:.2f} us of telemetry calls per run (no-op proxies), "
        f"{share:.2f}% of the {off_cpu:.2f} ms of CPU a run costs the `off` mesh"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 8 clients x 2 runs")
    parser.add_argument("--rounds", type=positive_int, default=ROUNDS)
    parser.add_argument("--clients", type=positive_int, default=CLIENTS)
    parser.add_argument("--turns", type=positive_int, default=TURNS_PER_CLIENT, help="runs per client")
    parser.add_argument("--off-calls", type=positive_int, default=OFF_CALLS)
    args = parser.parse_args(argv)
    if args.serve_sink:
        asyncio.run(serve_sink())
        return 0
    if args.quick:
        args.rounds, args.clients, args.turns, args.off_calls = 1, 8, 2, 10_000
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
