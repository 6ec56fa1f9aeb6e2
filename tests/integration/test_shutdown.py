"""Health, graceful shutdown and signals, in-process and as a real process."""

from __future__ import annotations

import asyncio
import sys

import grpc
import pytest

from meshscope.cli.launch import launch
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.state import InMemorySessionStore, StateKey, TurnWrite, TurnWritten
from meshscope.testing import child_env, health_status, wait_for
from meshscope.v1 import common_pb2
from meshscope.wire import declared_reason
from tests.conftest import StartServer
from tests.support import REPO, run_cli, start_agents

pytestmark = pytest.mark.integration


async def test_health_is_serving_per_agent_and_unknown_names_are_not_found(start_server: StartServer) -> None:
    server = await start_server(["analyst", "writer"])
    for service in ("", "meshscope.v1.AgentService", "analyst", "writer"):
        assert await health_status(server.address, service) == "SERVING"
    assert await health_status(server.address, "poet") == "NOT_FOUND"


async def test_shutdown_goes_not_serving_then_drains_the_in_flight_stream(start_server: StartServer) -> None:
    server = await start_server(["analyst"], shutdown_pause_s=1.0, shutdown_grace_s=20)
    async with AgentClient(server.address) as client:
        events = []
        first_delta = asyncio.Event()

        async def consume() -> None:
            async for event in client.invoke("analyst", "long answer #slow=40", session_id="s-drain"):
                events.append(event)
                if event.HasField("text_delta"):
                    first_delta.set()

        stream = asyncio.create_task(consume())
        await asyncio.wait_for(first_delta.wait(), 10)
        stopping = asyncio.create_task(server.stop())
        await wait_for(
            lambda: health_status(server.address, "analyst"), lambda s: s == "NOT_SERVING", timeout=5
        )
        # A new turn during the drain is refused so the caller can go elsewhere.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.reply("analyst", "one more?", session_id="s-other")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert declared_reason(refused.value.trailing_metadata()) == common_pb2.ERROR_REASON_DRAINING
        await asyncio.wait_for(stream, 30)
        await asyncio.wait_for(stopping, 30)
    assert events[-1].HasField("reply_end")
    assert events[-1].reply_end.finished_reason == "completed"
    assert server.stats.completed == 1 and server.stats.cancelled == 0


async def test_a_turn_still_running_at_the_end_of_the_grace_gets_an_error_event(
    start_server: StartServer,
) -> None:
    server = await start_server(["analyst"], shutdown_pause_s=0, shutdown_grace_s=1)
    async with AgentClient(server.address) as client:
        events = []
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            # 200 words at 50 ms: 10 s, far beyond the 1 s grace.
            async for event in client.invoke("analyst", "very long #slow=200", session_id="s-cut"):
                events.append(event)
                if event.HasField("text_delta") and len(events) == 5:
                    stopping = asyncio.create_task(server.stop())
        await asyncio.wait_for(stopping, 10)
        after = await start_server(["analyst"], store=server.store)
        async with AgentClient(after.address) as again:
            continued = await again.reply("analyst", "are you there?", session_id="s-cut")
    assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cut off after the 1s grace period" in str(cut.value.details())
    # The wire form of the reason, literally: a caller in any language reads this trailer.
    assert ("meshscope-error-reason", "ERROR_REASON_CUT_OFF") in tuple(cut.value.trailing_metadata() or ())
    last = events[-1]
    assert last.HasField("error"), last
    assert last.error.code == "UNAVAILABLE" and last.error.retryable
    assert last.error.reason == common_pb2.ERROR_REASON_CUT_OFF
    assert "cut off" in last.error.message
    assert server.stats.failed == 1
    # Its partial turn was saved before the server stopped.
    assert "Earlier you said: very long #slow=200" in continued.text


def test_sigterm_drains_then_exits_cleanly() -> None:
    agents = start_agents(
        ["--agents", "analyst"], {"MESHSCOPE_SHUTDOWN_PAUSE_S": "0.5", "MESHSCOPE_SHUTDOWN_GRACE_S": "20"}
    )
    try:

        async def scenario() -> list[str]:
            assert await health_status(agents.address, "analyst") == "SERVING"
            kinds: list[str] = []
            async with AgentClient(agents.address) as client:
                stream = client.invoke("analyst", "long answer #slow=30", session_id="s")
                async for event in stream:
                    kinds.append(str(event.WhichOneof("kind")))
                    if kinds.count("text_delta") == 1:
                        agents.terminate()
                        await wait_for(
                            lambda: health_status(agents.address, "analyst"),
                            lambda s: s == "NOT_SERVING",
                            timeout=5,
                        )
            return kinds

        kinds = asyncio.run(scenario())
        assert kinds[-1] == "reply_end"
        assert kinds.count("text_delta") > 30
        assert agents.proc.wait(timeout=30) == 0
        assert any("shutting down" in line for line in agents.log)
    finally:
        agents.stop()


def test_python_dash_m_runs_a_single_agent() -> None:
    coder = launch([sys.executable, "-m", "meshscope.services.coder", "--port", "0"], child_env(), cwd=REPO)
    try:

        async def ask() -> str:
            async with AgentClient(coder.address) as client:
                return (await client.reply("coder", "write a loop #tool", session_id="c")).text

        assert "valid Python" in asyncio.run(ask())
    finally:
        assert coder.stop() == 0


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    first = start_agents(["--agents", "writer"])
    try:
        port = first.address.rsplit(":", 1)[1]
        result = run_cli(["serve", "agents", "--agents", "writer", "--port", port])
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines == [f"meshscope: cannot serve: cannot bind 127.0.0.1:{port} (Address already in use)"], (
            lines
        )
    finally:
        first.stop()


class SlowSavingStore(InMemorySessionStore):
    """The in-memory store with a slow save, as a loaded Redis can be."""

    async def finish_turn(self, write: TurnWrite) -> TurnWritten:
        await asyncio.sleep(1.5)
        return await super().finish_turn(write)


async def test_stop_waits_for_a_save_still_running_before_the_store_closes(start_server: StartServer) -> None:
    store = SlowSavingStore()
    server = await start_server(["analyst"], store=store, shutdown_pause_s=0, shutdown_grace_s=1)
    async with AgentClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError):
            async for event in client.invoke("analyst", "very long #slow=200", session_id="s-slow-save"):
                if event.HasField("text_delta") and event.sequence == 5:
                    # Cut off half-way through the 1 s grace, the turn starts its 1.5 s save;
                    # gRPC cancels the call at the end of the grace, with the save still running.
                    stopping = asyncio.create_task(server.stop())
    await asyncio.wait_for(stopping, 15)
    # By the time stop() returned, that turn had saved and unlocked.
    saved = await store.load(StateKey("anonymous", "s-slow-save", "analyst"))
    assert saved is not None
    assert await store.acquire("s-slow-save", "analyst", "next-turn", 30)
