"""meshscope beside its peers, in one run (issue 11, item 1). Run it by hand, never in the tests:

    make bench                                 # builds .build/peers-venv first, then all benches
    .venv/bin/python -m bench.peers            # this bench alone (3 rounds, ~5 min on 2 cores)
    .venv/bin/python -m bench.peers --quick    # smoke run (`make bench BENCH_QUICK=1`), figures meaningless
    .venv/bin/python -m bench.peers --systems raw-1hop,direct-ns --rounds 5

Method. Every system serves the same echo workload (input "the quick brown fox jumps over the
lazy dog", reply its words in 20 chunks of 4) from its own processes (bench/peers/systems.py):
raw grpc.aio 1-hop and 2-hop relay on a tiny wire format of their own, AgentScope Runtime's
`AgentApp` over SSE (in .build/peers-venv; left out with one line when that venv is missing),
a bare a2a-sdk 1.3.0 JSON-RPC SSE server, meshscope direct (a fresh session per turn, and no
session) and meshscope orchestrated (client -> orchestrator -> agent, a fresh session per
turn). This one process is the load generator for all of them. After a warm-up, rounds
alternate the systems (the order rotating each round); each round measures 1-client latency
(200 turns), 64-client throughput (64 x 10 turns), server CPU per turn and RSS per process
(bench/peers/measure.py). Every response is checked — the 20 deltas' text, the terminal
event, nothing after it, the terminal event's copy of the text — and a wrong one stops the
run with exit status 1. Figures are medians across rounds; ratios and issue 11's targets come
from the medians. Output: the rows as they come, the summary, and peers.json, peers.md and
peers.png in --out (default .build/bench); `--render PEERS_JSON` writes them again from a saved run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path

import grpc

from bench.echo_text import FAULTS
from bench.load import positive_int
from bench.peers.checks import BadResponse
from bench.peers.measure import QUICK, Figures, Plan, median_of, run_rounds
from bench.peers.report import load, print_header, print_row, print_summary, write_outputs
from bench.peers.systems import SPECS, System, start_systems
from bench.processes import REPO
from meshscope.cli.launch import LaunchError

DEFAULT_OUT = REPO / ".build" / "bench"


def system_keys(raw: str) -> list[str]:
    """An argparse type: a comma-separated list of system keys."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SPECS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown system(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(SPECS)}"
        )
    return keys


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description="meshscope beside its peers, in one run."
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures meaningless)")
    parser.add_argument("--rounds", type=positive_int, help="alternating rounds (default 3; --quick: 1)")
    parser.add_argument("--systems", type=system_keys, default=list(SPECS), help="comma-separated keys")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where peers.json/.md/.png go")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="PEERS_JSON",
        help="no run: print and write a saved run's results again",
    )
    parser.add_argument(
        "--raw-fault",
        choices=sorted(FAULTS),
        default="none",
        help="make the raw echo server stream a wrong reply (the harness's own test uses it)",
    )
    return parser.parse_args(argv)


async def bench(args: argparse.Namespace, plan: Plan, stack: ExitStack, load_avg: float) -> int:
    """Start the systems, run the rounds, print and write the results; the exit status."""
    systems: list[System] = []
    try:
        systems = start_systems(stack, args.systems, plan.clients, raw_fault=args.raw_fault)
        for system in systems:
            pids = ", ".join(f"{p.label} pid {p.pid} {p.address}" for p in system.processes)
            print(f"  {system.key:<14} {pids}", flush=True)
        print(
            f"\n{plan.rounds} round(s), systems alternating (order rotating); 1 client: "
            f"{plan.sequential_turns} turns; {plan.clients} clients x {plan.turns_per_client} turns; "
            "every response checked\n",
            flush=True,
        )
        print_header(plan.clients)
        rounds = await run_rounds(systems, plan, lambda f: print_row(str(f.round_no), f))
    except BadResponse as exc:
        print(f"\nbench: FAILED, a wrong response: {exc}", flush=True)
        return 1
    except LaunchError as exc:
        print(f"\nbench: FAILED, a server did not start: {exc}", flush=True)
        return 1
    finally:
        for system in systems:
            await system.client.close()
    medians: dict[str, Figures] = {key: median_of(figures) for key, figures in rounds.items()}
    print_summary(medians, rounds)
    meta = {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "plan": asdict(plan),
        "processes": {s.key: [p.label for p in s.processes] for s in systems},
        "load_avg_at_start": load_avg,
        "http_stacks": {s.key: _stack_lines(s) for s in systems if _stack_lines(s)},
    }
    paths = write_outputs(args.out, meta, rounds, medians)
    print("\nwrote " + ", ".join(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p) for p in paths))
    return 0


def _stack_lines(system: System) -> list[str]:
    """What the HTTP peers said they run on (`... runs on uvloop + httptools`)."""
    return [line for p in system.processes for line in p.service.log if " runs on " in line]


def render(saved: Path, out: Path) -> int:
    """Print the summary of a saved `peers.json` and write its three files into `out` again."""
    try:
        meta, rounds, medians = load(saved)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench: cannot render {saved}: {type(exc).__name__}: {exc}")
        return 2
    print_summary(medians, rounds)
    paths = write_outputs(out, meta, rounds, medians)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        return render(args.render, args.out)
    load_avg = round(os.getloadavg()[0], 2)
    plan = QUICK if args.quick else Plan()
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    started = time.monotonic()
    print(
        f"meshscope bench: the peers side by side | {os.cpu_count()} CPUs, load avg "
        f"{load_avg:.2f} at start, Python {platform.python_version()}, grpcio {grpc.__version__}"
        + (" | QUICK: figures meaningless" if args.quick else ""),
        flush=True,
    )
    with ExitStack() as stack:
        status = asyncio.run(bench(args, plan, stack, load_avg))
    print(f"(finished in {time.monotonic() - started:.0f} s; servers stopped)")
    return status


if __name__ == "__main__":
    sys.exit(main())
