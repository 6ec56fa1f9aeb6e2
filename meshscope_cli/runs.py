"""`meshscope run` and `meshscope pipelines`: clients of the orchestrator."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TextIO

import grpc

from meshscope.orchestrator.client import OrchestratorClient
from meshscope.wire import MAX_RUN_TIMEOUT_S, declared_reason


class StepPrinter:
    """Prints step text as it streams, one step at a time.

    Parallel steps stream interleaved; printing word by word from two agents
    on one terminal is unreadable, so the first step to speak has the floor
    and the others are buffered until it finishes, then printed in turn.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.active: tuple[str, str] | None = None
        self.buffers: dict[tuple[str, str], list[str]] = {}
        self.done: set[tuple[str, str]] = set()
        self.printed_any = False
        self.replicas: dict[tuple[str, str], str] = {}
        """The replica that served each (step, agent), for its label."""

    def _label(self, source: tuple[str, str]) -> str:
        step, agent = source
        label = agent if step == agent else f"{step} · {agent}"
        replica = self.replicas.get(source)
        return f"{label} @ {replica}" if replica else label

    def _start(self, source: tuple[str, str]) -> None:
        self.out.write(f"{chr(10) if self.printed_any else ''}[{self._label(source)}] ")
        self.printed_any = True
        self.active = source

    def text(self, source: tuple[str, str], delta: str) -> None:
        if self.active is None:
            self._start(source)
        if source == self.active:
            self.out.write(delta)
            self.out.flush()
        else:
            self.buffers.setdefault(source, []).append(delta)

    def finished(self, source: tuple[str, str]) -> None:
        self.done.add(source)
        if source != self.active:
            return
        self.active = None
        while self.buffers:
            nxt = next(iter(self.buffers))
            self._start(nxt)
            self.out.write("".join(self.buffers.pop(nxt)))
            if nxt not in self.done:
                return  # still streaming: it has the floor now
            self.active = None
        self.out.flush()


def _failed(error: grpc.aio.AioRpcError, address: str, *, started: bool = False) -> None:
    """One line for a failed call; an orchestrator that is not there says where it was looked for, and a
    stream that broke after the run started says so (the orchestrator was there)."""
    transport = (
        error.code() == grpc.StatusCode.UNAVAILABLE and declared_reason(error.trailing_metadata()) is None
    )
    if transport and started:
        print(
            f"meshscope: the run's stream from the orchestrator at {address} broke ({error.details()}): "
            "it stopped or its connection was lost; the run did not finish",
            file=sys.stderr,
        )
        return
    if transport:
        print(
            f"meshscope: cannot reach the orchestrator at {address} ({error.details()}); is one running "
            "there? Start one (meshscope up, or meshscope serve orchestrator) or point "
            "MESHSCOPE_ORCHESTRATOR at one",
            file=sys.stderr,
        )
        return
    print(f"meshscope: {error.code().name}: {error.details()}", file=sys.stderr)


async def _run(
    target: str, text: str, session: str, user: str, timeout: float | None, out: TextIO, verbose: bool
) -> int:
    printer = StepPrinter(out)
    reported = False
    started = False
    async with OrchestratorClient() as client:
        try:
            async for event in client.run(target, text, session_id=session, user_id=user, timeout=timeout):
                started = True
                kind = event.WhichOneof("kind")
                source = (event.step, event.agent)
                if event.replica:
                    printer.replicas.setdefault(source, event.replica)
                if verbose:
                    inner = event.agent_event.WhichOneof("kind") if kind == "agent_event" else ""
                    print(
                        f"  #{event.sequence} {kind}{'.' + inner if inner else ''}"
                        + (
                            f" step={event.step} agent={event.agent} replica={event.replica}"
                            if event.step
                            else ""
                        ),
                        file=sys.stderr,
                    )
                if kind == "agent_event" and event.agent_event.HasField("text_delta"):
                    printer.text(source, event.agent_event.text_delta.delta)
                elif kind == "agent_event" and event.agent_event.HasField("reply_end"):
                    printer.finished(source)
                elif kind == "error":
                    out.write("\n")
                    print(
                        f"meshscope: run failed: {event.error.code}: {event.error.message}", file=sys.stderr
                    )
                    reported = True
                elif kind == "run_end":
                    end = event.run_end
                    out.write(
                        f"\n\n({end.steps} step(s), {len(end.replicas)} replica(s), "
                        f"{end.usage.output_tokens} output tokens, {end.duration_ms:.0f} ms)\n"
                    )
        except grpc.aio.AioRpcError as error:
            if printer.printed_any:
                out.write("\n")  # the error's line after the text cut short, not glued to it
                out.flush()
            if not reported:
                _failed(error, client.target, started=started)
            return 1
    return 0


def run(target: str, text: str, session: str, user: str, timeout: float | None, verbose: bool = False) -> int:
    """Stream a run to the terminal, each step labelled by its agent and replica; exit 1 on failure,
    2 on bad arguments, 130 on Ctrl-C (one line, the run cancelled with the call)."""
    if timeout is not None and not 0 < timeout <= MAX_RUN_TIMEOUT_S:  # also rejects nan and inf
        print(f"meshscope: --timeout must be between 0 and {MAX_RUN_TIMEOUT_S:.0f} seconds", file=sys.stderr)
        return 2
    if not text.strip():
        print("meshscope: TEXT is empty: say what the run is about", file=sys.stderr)
        return 2
    return _interruptible(_run(target, text, session, user, timeout, sys.stdout, verbose))


def _interruptible(work: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        print("\nmeshscope: interrupted", file=sys.stderr)
        return 130


async def _pipelines() -> int:
    async with OrchestratorClient() as client:
        try:
            response = await client.list_pipelines()
        except grpc.aio.AioRpcError as error:
            _failed(error, client.target)
            return 1
    if not response.pipelines:
        print("no pipelines (the orchestrator's mesh file declares none)")
        return 0
    width = max(len("PIPELINE"), *(len(p.name) for p in response.pipelines))
    print(f"{'PIPELINE'.ljust(width)}  {'KIND':<10}  {'AGENTS':<30}  DESCRIPTION")
    for p in response.pipelines:
        print(f"{p.name.ljust(width)}  {p.kind:<10}  {', '.join(p.agents):<30}  {p.description}")
    return 0


def pipelines() -> int:
    return _interruptible(_pipelines())


async def _sessions(action: str, value: str) -> int:
    async with OrchestratorClient() as client:
        try:
            # Both walk every page, printing each as it arrives: a transcript or a listing
            # of any length, never one message that grows with it.
            if action == "list":
                listed = 0
                async for s in client.sessions(value):
                    when = datetime.fromtimestamp(s.updated_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
                    print(f"{s.session_id}  {when}  {s.turns} turn(s)  {', '.join(s.agents)}", flush=True)
                    listed += 1
                if not listed:
                    print(f"no sessions for user {value or 'anonymous'!r}")
            elif action == "show":
                async for line in client.history(value):
                    speaker = line.name if line.role == "assistant" else f"{line.name} -> {line.agent}"
                    print(f"[{speaker}] {line.text}", flush=True)
            else:
                deleted = await client.delete_session(value)
                print(f"deleted session {value!r}" if deleted else f"no session {value!r}")
                return 0 if deleted else 1
        except grpc.aio.AioRpcError as error:
            _failed(error, client.target)
            return 1
    return 0


def sessions(action: str, value: str) -> int:
    """`meshscope sessions list|show|delete`."""
    return _interruptible(_sessions(action, value))
