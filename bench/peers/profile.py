"""Where the per-event CPU goes: py-spy on the raw peers, the agent and the orchestrator under load.

Run it by hand (not part of `make bench`; py-spy needs ptrace, which root has here):

    .venv/bin/python -m bench.peers.profile [--seconds 15] [--out .build/bench/profile]

Method. One phase per system — raw-1hop, direct-ns (meshscope's agent, no session: like for
like with raw-1hop), raw-2hop and orchestrated — each driven by the load generator of
`bench.peers` (64 clients of checked turns) for the whole sampling window, while
`py-spy record --native --rate RATE --format raw` samples every process of the system.
Native frames show time in C: grpc's core and Cython layer, protobuf's upb, the kernel
calls (sendmsg, write, recv), the interpreter. Samples whose innermost frame is a wait
(epoll_wait, futex, ...) are idle and left out; the others are "busy" and, at RATE Hz, stand
for a share of the process's CPU (a thread descheduled on a loaded machine is sampled too:
the shares are approximate). The collapsed stacks are written to --out and summed three ways
per process:
- by area of the innermost frame (kernel send/receive, grpc C, protobuf C, interpreter, and
  for Python frames: grpc, asyncio, meshscope, AgentScope, pydantic, logging, other);
- by the innermost Python frame (the Python line that is running, or that called into C):
  the top frames;
- meshscope's own functions, inclusive (on the stack anywhere).
Each share is also given in ms per turn: the share times the process's CPU per turn, read
from /proc over the same window (py-spy's sampling stops the process briefly: that CPU is
in it too).

Then, where `strace` is installed, each phase again without py-spy: `strace -f -c` counts the
socket and wake-up system calls of every process over SYSCALL_TURNS turns, per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.load import positive_int
from bench.peers.measure import concurrent
from bench.peers.systems import System, start_systems
from bench.processes import REPO, ServerProcess

PY_SPY = Path(sys.executable).parent / "py-spy"
SYSCALLS = ("sendmsg", "write", "recvmsg", "read", "epoll_wait")
SYSCALL_TURNS = 640
RATE = 100
CLIENTS = 64
PHASES = ("raw-1hop", "direct-ns", "raw-2hop", "orchestrated")
IDLE = frozenset(
    {"epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect", "nanosleep", "clock_nanosleep"}
    | {"pthread_cond_wait", "pthread_cond_timedwait", "sem_wait", "sem_timedwait"}
)
"""Innermost native frames of a thread that waits rather than works."""
NATIVE_AREAS = (
    ("kernel: sendmsg (gRPC's socket writes)", ("sendmsg ", "writev ", "send ")),
    ("kernel: write (loop wake-ups)", ("write ",)),
    ("kernel: receive (recvmsg, read)", ("recvmsg ", "recv ", "read ")),
    ("grpc core + Cython (C)", ("cygrpc",)),
    ("protobuf upb (C)", ("_message.abi3", "upb_")),
    ("pydantic-core (C)", ("pydantic_core",)),
    ("interpreter + asyncio C", ("libpython", ".c:", ".h:")),
    ("libc: malloc, other calls", ("libc.so",)),
)
PYTHON_AREAS = (
    ("grpc (Python)", ("grpc/",)),
    ("protobuf (Python)", ("google/protobuf/",)),
    ("asyncio (Python)", ("asyncio/", "selectors.py")),
    ("meshscope", ("services/", "orchestrator/", "protos/meshscope/", "discovery/", "meshscope/", "bench/")),
    ("AgentScope", ("agentscope/",)),
    ("pydantic (Python)", ("pydantic/",)),
    ("logging / OpenTelemetry", ("logging/", "opentelemetry/")),
)


@dataclass(frozen=True)
class Frame:
    """One frame of a collapsed py-spy stack: `function (file:line)`, or a native `0xADDR (lib.so)`."""

    raw: str

    @property
    def python(self) -> bool:
        return ".py:" in self.raw or "<frozen" in self.raw or "<string>" in self.raw

    @property
    def without_line(self) -> str:
        """`function (file)`: the line number dropped, so lines of one function add up."""
        name, _, where = self.raw.partition(" (")
        return f"{name} ({where.rstrip(')').rsplit(':', 1)[0]})"

    def idle(self) -> bool:
        name = self.raw.partition(" (")[0]
        return name in IDLE or name.startswith("__futex_abstimed_wait")

    def area(self) -> str:
        for area, markers in NATIVE_AREAS if not self.python else PYTHON_AREAS:
            if any(m in self.raw for m in markers):
                return area
        return "other (C)" if not self.python else "other (Python)"


def read_stacks(path: Path) -> Counter[tuple[Frame, ...]]:
    """py-spy's raw output: one `frame;frame;...;frame COUNT` line per distinct stack, outermost first."""
    stacks: Counter[tuple[Frame, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(Frame(f) for f in stack.split(";") if f)] += int(count)
    return stacks


def summarize(label: str, stacks: Counter[tuple[Frame, ...]], cpu_ms_per_turn: float, top: int = 10) -> str:
    """A process's busy samples by area, by innermost Python frame and by meshscope function, as text.

    Each share is also shown as ms per turn: the share of the process's CPU per turn, measured
    from /proc over the same window (`cpu_ms_per_turn`).
    """
    busy = {frames: n for frames, n in stacks.items() if frames and not frames[-1].idle()}
    total = sum(busy.values()) or 1
    ms_per_turn = cpu_ms_per_turn / total
    areas: Counter[str] = Counter()
    python_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in busy.items():
        areas[frames[-1].area()] += n
        innermost = next((f for f in reversed(frames) if f.python), None)
        python_leaf[innermost.without_line if innermost else "(no Python frame: grpc's own threads)"] += n
        for name in {f.without_line for f in frames if f.python and f.area() == "meshscope"}:
            inclusive[name] += n

    def rows(counter: Counter[str], limit: int | None = None) -> list[str]:
        return [f"  {100 * n / total:5.1f}%  {n * ms_per_turn:5.2f} ms/turn  {name}"
                for name, n in counter.most_common(limit)]  # fmt: skip

    lines = [
        f"## {label}: {cpu_ms_per_turn:.2f} ms CPU per turn (/proc); "
        f"{total} busy samples of {sum(stacks.values())} at {RATE} Hz",
        "",
        "by area of the innermost frame:",
        *rows(areas),
        "",
        f"by innermost Python frame (C time counted against the Python code that called it), top {top}:",
        *rows(python_leaf, top),
        "",
        f"meshscope's own functions, inclusive, top {top}:",
        *rows(inclusive, top),
    ]
    return "\n".join(lines) + "\n"


def record(process: ServerProcess, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on `process` for `seconds`, raw collapsed stacks into `out`."""
    command = [str(PY_SPY), "record", "--pid", str(process.pid), "--duration", str(seconds),
               "--rate", str(RATE), "--format", "raw", "--native", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def load_while(system: System, samplers: Sequence[subprocess.Popen[bytes]]) -> int:
    """Drive `system` with CLIENTS clients in batches until every sampler has exited; the turns run."""
    turns = 0
    batch = 0
    while any(s.poll() is None for s in samplers):
        await concurrent(system, CLIENTS, 5, f"profile-{system.key}-{batch}")
        turns += CLIENTS * 5
        batch += 1
    return turns


def trace(process: ServerProcess) -> subprocess.Popen[str]:
    """`strace -f -c` counting SYSCALLS on `process` (and its threads) until SIGINT."""
    command = ["strace", "-f", "-c", "-e", f"trace={','.join(SYSCALLS)}", "-p", str(process.pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def count_syscalls(system: System) -> str:
    """SYSCALLS per turn of each of `system`'s processes over SYSCALL_TURNS turns, as text."""
    tracers = [trace(p) for p in system.processes]
    for tracer in tracers:  # strace says "Process N attached" once it counts; turns before would be lost
        assert tracer.stderr is not None
        first = await asyncio.to_thread(tracer.stderr.readline)
        if "attached" not in first:
            raise RuntimeError(f"strace did not attach: {first.strip()}")
    await concurrent(system, CLIENTS, SYSCALL_TURNS // CLIENTS, f"strace-{system.key}")
    lines = []
    for tracer, process in zip(tracers, system.processes, strict=True):
        tracer.send_signal(signal.SIGINT)
        counts = {}
        for row in tracer.communicate(timeout=30)[1].splitlines():
            cells = row.split()
            if len(cells) >= 5 and cells[-1] in SYSCALLS and cells[3].isdigit():
                counts[cells[-1]] = int(cells[3]) / SYSCALL_TURNS
        shown = ", ".join(f"{name} {counts.get(name, 0):.1f}" for name in SYSCALLS)
        lines.append(f"  {system.key}: {process.label}: {shown}")
    return "\n".join(lines)


async def profile(seconds: int, out: Path, stack: ExitStack) -> str:
    """Every phase in turn; the summaries as one text."""
    systems = {s.key: s for s in start_systems(stack, PHASES, CLIENTS)}
    report: list[str] = []
    try:
        for key in PHASES:
            system = systems[key]
            await concurrent(system, CLIENTS, 3, f"profile-warm-{key}")
            files = {p.label: out / f"{key}-{p.label.replace(' ', '-')}.txt" for p in system.processes}
            cpu_before = {p.label: p.cpu_seconds() for p in system.processes}
            samplers = [record(p, seconds, files[p.label]) for p in system.processes]
            started = time.perf_counter()
            turns = await load_while(system, samplers)
            elapsed = time.perf_counter() - started
            cpu = {p.label: (p.cpu_seconds() - cpu_before[p.label]) * 1000 / turns for p in system.processes}
            for sampler in samplers:
                if sampler.wait() != 0:
                    error = sampler.stderr.read().decode() if sampler.stderr else ""
                    raise RuntimeError(f"py-spy failed: {error.strip()[-300:]}")
            report.append(
                f"# {system.label}: {turns} checked turns in {elapsed:.1f} s ({turns / elapsed:.0f}/s)\n"
            )
            for label, path in files.items():
                report.append(summarize(f"{key}: {label}", read_stacks(path), cpu[label]))
        if shutil.which("strace"):
            report.append(f"# system calls per turn ({SYSCALL_TURNS} turns, {CLIENTS} clients, strace -c)\n")
            report.extend([await count_syscalls(systems[key]) for key in PHASES])
    finally:
        for system in systems.values():
            await system.client.close()
    return "\n".join(report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.profile", description=__doc__)
    parser.add_argument("--seconds", type=positive_int, default=15, help="sampling window per phase")
    parser.add_argument("--out", type=Path, default=REPO / ".build" / "bench" / "profile")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        text = asyncio.run(profile(args.seconds, args.out, stack))
    (args.out / "summary.txt").write_text(text)
    print(text)
    print(f"(collapsed stacks and summary.txt in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
