"""Sessions on a real redis-server: any replica serves the next turn, one turn at a time."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import redis.asyncio as redis

from meshscope.cli.launch import meshscope_command
from meshscope.clients import SessionClient
from meshscope.codec import Reply
from meshscope.discovery.model import Instance, replica_id_for
from meshscope.discovery.watcher import StaticWatcher
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.pipelines import parse_mesh
from meshscope.orchestrator.service import OrchestratorServer
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.redis_store import RedisSessionStore
from meshscope.services.runtime.state import HistoryEntry
from meshscope.services.runtime.stores import StoreSettings
from meshscope.testing import RedisDevServer, child_env, free_port, wait_for
from meshscope.v1 import common_pb2
from meshscope.wire import declared_reason
from tests.conftest import StartServer
from tests.support import REPO, run_cli, start_agents, start_orchestrator

pytestmark = pytest.mark.integration


def redis_store(server: RedisDevServer) -> RedisSessionStore:
    return RedisSessionStore(StoreSettings(redis_url=server.url))


async def test_turn_two_on_another_replica_continues_the_conversation(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    a = await start_server(["analyst"], store=redis_store(redis_server))
    b = await start_server(["analyst"], store=redis_store(redis_server))
    async with AgentClient(a.address) as on_a, AgentClient(b.address) as on_b:
        await on_a.reply("analyst", "my budget is 42 euros", session_id="trip", user_id="ann")
        second = await on_b.reply("analyst", "what was my budget?", session_id="trip", user_id="ann")
    assert "turn 2" in second.text
    assert "Earlier you said: my budget is 42 euros" in second.text
    history = (await redis_store(redis_server).history("trip", 0, 100)).entries
    assert [(h.role, h.text[:14]) for h in history] == [
        ("user", "my budget is 4"),
        ("assistant", "analyst: turn "),
        ("user", "what was my bu"),
        ("assistant", "analyst: turn "),
    ]


async def test_state_is_saved_after_an_error_and_after_a_cancellation(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    server = await start_server(["analyst"], store=redis_store(redis_server))
    async with AgentClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError):
            await client.reply("analyst", "boom #fail", session_id="s")
        seen = 0
        async for event in client.invoke("analyst", "long #slow", session_id="s"):
            seen += event.HasField("text_delta")
            if seen == 3:
                break
        await wait_for(lambda: _value(server.stats.cancelled), lambda n: n == 1, timeout=5)
        await wait_for(lambda: _value(server.stats.in_flight), lambda n: n == 0, timeout=5)
        after = await client.reply("analyst", "still there?", session_id="s")
    assert "turn 3" in after.text
    assert "Earlier you said: long #slow" in after.text


async def _value(value: int) -> int:
    return value


async def test_two_turns_of_one_session_never_run_at_once(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    busy = await start_server(["analyst"], store=redis_store(redis_server))
    waiting = await start_server(["analyst"], store=redis_store(redis_server), lock_wait_s=10)
    async with AgentClient(busy.address) as first, AgentClient(waiting.address) as second:
        holding = asyncio.Event()
        long_events = []

        async def long_turn() -> None:
            async for event in first.invoke("analyst", "slow two #slow=20", session_id="two"):
                long_events.append(event)
                holding.set()

        running = asyncio.create_task(long_turn())
        await asyncio.wait_for(holding.wait(), 10)  # it streams, so it holds the session's lock
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await first.reply("analyst", "me too", session_id="two")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "session 'two' is busy: agent 'analyst' is already running a turn in it" in str(
            refused.value.details()
        )
        assert declared_reason(refused.value.trailing_metadata()) == common_pb2.ERROR_REASON_SESSION_BUSY
        # A replica configured to wait queues behind the running turn instead.
        queued = await _collect(second, "after you", "two")
        await running
    assert long_events[-1].HasField("reply_end")
    assert queued.message is not None
    # The queued turn started after the long one ended, and saw it.
    assert (
        long_events[-1].created_at_ms <= queued.events[0].created_at_ms
    )  # reply end, then the next reply start
    assert "turn 2" in queued.text
    assert "Earlier you said: slow two" in queued.text


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_turn_longer_than_the_lock_ttl_keeps_its_lock(
    start_server: StartServer, request: pytest.FixtureRequest, backend: str
) -> None:
    """The lease keeper renews the lock, so nobody else gets in after the TTL."""
    store = redis_store(request.getfixturevalue("redis_server")) if backend == "redis" else None
    ttl_s = 0.6
    server = await start_server(["analyst"], store=store, lock_ttl_s=ttl_s)
    async with AgentClient(server.address) as client:
        deltas = 0
        # 40 words at 50 ms each: a 2 s turn. After 25 deltas (>= 1.25 s) it has
        # outlived its 0.6 s lock twice over, so only renewals can still hold it.
        async for event in client.invoke("analyst", "long #slow=40", session_id="held"):
            deltas += event.HasField("text_delta")
            if deltas == 25:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await client.reply("analyst", "me too", session_id="held")
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert event.HasField("reply_end")
        after = await client.reply("analyst", "and now", session_id="held")
    assert "Earlier you said: long #slow=40" in after.text


async def _collect(client: AgentClient, text: str, session: str) -> Reply:
    return await client.reply("analyst", text, session_id=session)


async def test_a_sigkilled_holders_lock_expires(redis_server: RedisDevServer) -> None:
    env = {"REDIS_URL": redis_server.url, "MESHSCOPE_SESSION_LOCK_TTL_S": "1"}
    holder = start_agents(["--agents", "analyst"], env)
    other = start_agents(["--agents", "analyst"], env)
    try:
        async with AgentClient(holder.address) as h, AgentClient(other.address) as o:
            seen = 0
            stream = h.invoke("analyst", "hold it #slow", session_id="locked")
            async for event in stream:
                seen += event.HasField("text_delta")
                if seen == 2:
                    holder.proc.kill()
                    break
            with pytest.raises(grpc.aio.AioRpcError) as busy:
                await o.reply("analyst", "now?", session_id="locked")
            assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            killed = asyncio.get_running_loop().time()

            async def attempt() -> str:
                try:
                    return (await o.reply("analyst", "now?", session_id="locked")).text
                except grpc.aio.AioRpcError as error:
                    return str(error.code().name)

            text = await wait_for(attempt, lambda t: t.startswith("analyst:"), timeout=10, interval=0.1)
            assert asyncio.get_running_loop().time() - killed < 3
            assert "turn" in text
    finally:
        holder.stop()
        other.stop()


async def test_redis_unreachable_is_unavailable_with_a_clear_message(start_server: StartServer) -> None:
    dead = RedisSessionStore(
        StoreSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=1)
    )
    server = await start_server(["writer"], store=dead)
    events = []
    async with AgentClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for event in client.invoke("writer", "hello", session_id="s"):
                events.append(event)
        # A session-less turn needs no store and still works.
        assert (await client.reply("writer", "hello")).text.startswith("writer:")
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "session store unreachable (Redis at 127.0.0.1:" in str(failure.value.details())
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_STORE_UNAVAILABLE
    assert events == []


async def test_a_corrupt_stored_state_names_the_session(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    server = await start_server(["writer"], store=redis_store(redis_server))
    raw = redis.Redis.from_url(redis_server.url)
    await raw.hset("meshscope:state:anonymous:broken:writer", mapping={"data": "{not json", "version": 3})
    await raw.aclose()
    async with AgentClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await client.reply("writer", "hello", session_id="broken")
    assert failure.value.code() == grpc.StatusCode.DATA_LOSS
    assert "stored state of session 'broken' for agent 'writer' is corrupt" in str(failure.value.details())
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_CORRUPT_STATE


async def test_sessions_through_the_orchestrator(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    replica_a = await start_server(["analyst", "writer"], store=redis_store(redis_server))
    replica_b = await start_server(["analyst", "writer"], store=redis_store(redis_server))
    endpoints = {"analyst": [("127.0.0.1", replica_a.port)], "writer": [("127.0.0.1", replica_a.port)]}
    orchestrator = OrchestratorServer(
        parse_mesh(
            "agents: [analyst, writer]\n"
            "pipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n"
        ),
        StaticWatcher(endpoints),
        OrchestratorSettings(port=0, shutdown_pause_s=0, shutdown_grace_s=1),
    )
    await orchestrator.start()
    try:
        async with OrchestratorClient(orchestrator.address) as client:
            first = [e async for e in client.run("analysis", "plan a trip", session_id="trip", user_id="ann")]
            assert {e.replica for e in first if e.HasField("agent_event")} == {
                f"analyst@127.0.0.1:{replica_a.port}",
                f"writer@127.0.0.1:{replica_a.port}",
            }
            # Discovery now only knows replica B: turn 2 lands there and continues the conversation.
            orchestrator.pool.update("analyst", StaticWatcherInstances.of("analyst", replica_b.port))
            second = [
                e async for e in client.run("analyst", "and the budget?", session_id="trip", user_id="ann")
            ]
            assert {e.replica for e in second if e.HasField("agent_event")} == {
                f"analyst@127.0.0.1:{replica_b.port}"
            }
            text = "".join(
                e.agent_event.text_delta.delta for e in second if e.agent_event.HasField("text_delta")
            )
            assert "turn 2" in text and "Earlier you said: plan a trip" in text

            listed = await client.list_sessions("ann")
            assert [(s.session_id, s.turns, list(s.agents)) for s in listed.sessions] == [
                ("trip", 3, ["analyst", "writer"])
            ]
            session = await client.get_session("trip")
            assert [(h.agent, h.role) for h in session.history] == [
                ("analyst", "user"), ("analyst", "assistant"), ("writer", "user"), ("writer", "assistant"),
                ("analyst", "user"), ("analyst", "assistant"),
            ]  # fmt: skip
            assert session.history[0].text == "plan a trip"
            assert await client.delete_session("trip")
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await client.get_session("trip")
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
            assert (await client.list_sessions("ann")).sessions == []
            assert not await client.delete_session("trip")
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await client.get_session("")
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            fresh = [e async for e in client.run("analyst", "hello again", session_id="trip", user_id="ann")]
            fresh_text = "".join(
                e.agent_event.text_delta.delta for e in fresh if e.agent_event.HasField("text_delta")
            )
            assert "turn 1" in fresh_text  # the deleted state is gone everywhere
    finally:
        await orchestrator.stop()


class StaticWatcherInstances:
    @staticmethod
    def of(agent: str, port: int) -> list[Instance]:
        return [Instance(agent, replica_id_for(agent, "127.0.0.1", port), "127.0.0.1", port)]


def test_meshscope_sessions_commands(redis_server: RedisDevServer, tmp_path: Path) -> None:
    agents = start_agents(["--agents", "analyst,writer"], {"REDIS_URL": redis_server.url})
    orchestrator = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml",
            "agents: [analyst, writer]\n"
            "pipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n",
            {"analyst": agents.address, "writer": agents.address},
        )
        env = {"MESHSCOPE_ORCHESTRATOR": orchestrator.address}
        assert (
            run_cli(["run", "analysis", "plan a trip", "--session", "trip", "--user", "ann"], env).returncode
            == 0
        )
        listed = run_cli(["sessions", "list", "--user", "ann"], env)
        assert listed.returncode == 0, listed.stderr
        fields = listed.stdout.split()
        assert fields[0] == "trip"
        assert "2 turn(s)" in listed.stdout
        assert listed.stdout.strip().endswith("analyst, writer")
        # A reader that went away (`| head`) is no traceback.
        read_end, write_end = os.pipe()
        os.close(read_end)
        piped = subprocess.run(
            meshscope_command("sessions", "list", "--user", "ann"),
            cwd=REPO, env=child_env(env), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
        os.close(write_end)
        assert (piped.returncode, piped.stderr) == (141, "")
        shown = run_cli(["sessions", "show", "trip"], env)
        lines = shown.stdout.strip().splitlines()
        assert lines[0] == "[user -> analyst] plan a trip"
        assert lines[1].startswith("[analyst] analyst: turn 1.")
        assert len(lines) == 4
        assert run_cli(["sessions", "delete", "trip"], env).stdout.strip() == "deleted session 'trip'"
        missing = run_cli(["sessions", "show", "trip"], env)
        assert missing.returncode == 1
        assert missing.stderr.strip() == "meshscope: NOT_FOUND: no session 'trip'"
        assert run_cli(["sessions", "delete", "trip"], env).returncode == 1
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()


# -- Paging: everything that grows with user data is bounded on every hop ---------------------

LIMIT = 4 * 1024 * 1024
"""The default gRPC message limit (MESHSCOPE_GRPC_MAX_MESSAGE_BYTES) of every process here."""
BIG_TURN = 1_500_000


def big_text(turn: int) -> str:
    """About 1.5 MB of words, different for each turn."""
    word = f"turn{turn}word "
    return (word * (BIG_TURN // len(word) + 1))[:BIG_TURN].strip()


def static_orchestrator(endpoints: dict[str, list[tuple[str, int]]], **settings: int) -> OrchestratorServer:
    return OrchestratorServer(
        parse_mesh(f"agents: [{', '.join(endpoints)}]\n"),
        StaticWatcher(endpoints),
        OrchestratorSettings(port=0, shutdown_pause_s=0, shutdown_grace_s=1).with_overrides(**settings),
    )


async def test_a_session_larger_than_a_message_is_read_whole_through_the_orchestrator(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    """The report: three 1.5 MB turns, and the session could never be read again."""
    replica = await start_server(["echo"], store=redis_store(redis_server))
    orchestrator = static_orchestrator({"echo": [("127.0.0.1", replica.port)]})
    await orchestrator.start()
    texts = [big_text(n) for n in range(3)]
    try:
        async with OrchestratorClient(orchestrator.address) as client:
            for text in texts:
                events = [e async for e in client.run("echo", text, session_id="big", user_id="ann")]
                assert events[-1].HasField("run_end")
            first = await client.get_session("big")
            lines = [line async for line in client.history("big")]
            one_by_one = [line async for line in client.history("big", page_size=1)]
            listed = [s async for s in client.sessions("ann")]
        async with AgentClient(replica.address) as agent:
            direct = [line async for line in agent.history("big")]
    finally:
        await orchestrator.stop()
    assert [line.text for line in lines if line.role == "user"] == texts
    assert [(line.role, line.agent) for line in lines] == [("user", "echo"), ("assistant", "echo")] * 3
    assert sum(len(line.text) for line in lines) > LIMIT
    assert not any(line.truncated for line in lines)
    assert one_by_one == lines
    assert direct == lines
    # A page fits the limit, and its summary is the whole session's, not the page's.
    assert first.ByteSize() <= LIMIT
    assert first.next_page_token
    assert len(first.history) < 6
    assert (first.summary.turns, list(first.summary.agents), first.summary.user_id) == (3, ["echo"], "ann")
    assert [(s.session_id, s.turns) for s in listed] == [("big", 3)]


async def test_a_line_larger_than_a_message_is_cut_and_flagged_on_every_hop(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    small = 64 * 1024
    store = redis_store(redis_server)
    replica = await start_server(["writer"], store=store, max_message_bytes=small)
    huge = "é" * 100_000  # 200 kB of two-byte characters: cut on a character boundary
    await store.append_history(
        "ann",
        "wide",
        [
            HistoryEntry("writer", "user", "user", "write a lot", 1.0),
            HistoryEntry("writer", "assistant", "writer", huge, 2.0),
            HistoryEntry("writer", "user", "user", "thanks", 3.0),
        ],
    )
    orchestrator = static_orchestrator({"writer": [("127.0.0.1", replica.port)]}, max_message_bytes=small)
    await orchestrator.start()
    try:
        async with AgentClient(replica.address) as agent, OrchestratorClient(orchestrator.address) as client:
            direct = [line async for line in agent.history("wide")]
            through = [line async for line in client.history("wide")]
            page = await client.get_session("wide", page_size=2)
    finally:
        await orchestrator.stop()
    for lines in (direct, through):
        assert [line.text for line in lines][::2] == ["write a lot", "thanks"]
        cut = lines[1]
        assert cut.truncated and not lines[0].truncated
        kept = cut.text.split("\n[truncated by meshscope: ")[0]
        assert 0 < len(kept) < len(huge) and set(kept) == {"é"}
        assert cut.text.endswith(f" of {len(huge.encode())} bytes of this line fit in a response]")
        assert cut.ByteSize() < small
    assert page.ByteSize() <= small


async def test_the_merge_pages_one_answer_per_store(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    """Two replicas share Redis (analyst), a third process keeps its own memory store (writer)."""
    shared_a = await start_server(["analyst"], store=redis_store(redis_server))
    shared_b = await start_server(["analyst"], store=redis_store(redis_server))
    alone = await start_server(["writer"])
    orchestrator = OrchestratorServer(
        parse_mesh(
            "agents: [analyst, writer]\npipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}"
        ),
        StaticWatcher(
            {
                "analyst": [("127.0.0.1", shared_a.port), ("127.0.0.1", shared_b.port)],
                "writer": [("127.0.0.1", alone.port)],
            }
        ),
        OrchestratorSettings(port=0, shutdown_pause_s=0, shutdown_grace_s=1),
    )
    await orchestrator.start()
    try:
        async with OrchestratorClient(orchestrator.address) as client:
            for text in ("plan a trip", "and the budget?", "and the dates?"):
                [_ async for _ in client.run("analysis", text, session_id="mix", user_id="ann")]
            whole = [line async for line in client.history("mix")]
            paged = [line async for line in client.history("mix", page_size=1)]
            pages = 0
            token = ""
            while True:
                page = await client.get_session("mix", page_size=2, page_token=token)
                pages += 1
                assert (page.summary.turns, list(page.summary.agents)) == (6, ["analyst", "writer"])
                token = page.next_page_token
                if not token:
                    break
            listed = [s async for s in client.sessions("ann")]
            one_by_one = [s async for s in client.sessions("ann", page_size=1)]
    finally:
        await orchestrator.stop()
    assert [(line.agent, line.role) for line in whole] == [
        ("analyst", "user"), ("analyst", "assistant"), ("writer", "user"), ("writer", "assistant"),
    ] * 3  # fmt: skip
    assert [line.text for line in whole][::4] == ["plan a trip", "and the budget?", "and the dates?"]
    assert paged == whole  # no line twice although two replicas read the shared store
    assert pages == 6
    assert [(s.session_id, s.turns, list(s.agents)) for s in listed] == [("mix", 6, ["analyst", "writer"])]
    # A session kept by two stores is combined when both entries land on one page; on pages
    # of one, each store's entry is listed (docs/architecture.md, "Sessions").
    assert sorted((s.turns, tuple(s.agents)) for s in one_by_one) == [(3, ("analyst",)), (3, ("writer",))]


async def test_bad_page_sizes_and_tokens_are_invalid_arguments(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    store = redis_store(redis_server)
    replica = await start_server(["writer"], store=store)
    for session in ("one", "two"):
        await store.append_history("ann", session, [_entry(n) for n in range(3)])
    orchestrator = static_orchestrator({"writer": [("127.0.0.1", replica.port)]})
    await orchestrator.start()
    try:
        async with AgentClient(replica.address) as agent, OrchestratorClient(orchestrator.address) as mesh:
            for client in (agent, mesh):
                await _refuses_bad_paging(client)
    finally:
        await orchestrator.stop()


async def _refuses_bad_paging(client: SessionClient) -> None:
    other = (await client.get_session("two", page_size=1)).next_page_token
    foreign = "page_token: is not a next_page_token this service issued"
    bad: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("page_size: must not be negative, got -1", lambda: client.get_session("one", page_size=-1)),
        (foreign, lambda: client.get_session("one", page_token="garbage!")),
        (
            "page_token: belongs to another request (a different session or user)",
            lambda: client.get_session("one", page_token=other),
        ),
        ("page_size: must not be negative, got -5", lambda: client.list_sessions("ann", page_size=-5)),
        (foreign, lambda: client.list_sessions("ann", page_token=other)),
        (
            "page_token: must be at most 16384 characters, got 20000",
            lambda: client.get_session("one", page_token="x" * 20_000),
        ),
    ]
    for expected, call in bad:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == expected
        assert declared_reason(refused.value.trailing_metadata()) == common_pb2.ERROR_REASON_INVALID_INPUT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.get_session("three")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == "no session 'three'"
    assert declared_reason(missing.value.trailing_metadata()) == common_pb2.ERROR_REASON_NOT_FOUND
    assert len((await client.get_session("one", page_size=5000)).history) == 3  # capped, not refused


def _entry(n: int, text: str = "") -> HistoryEntry:
    return HistoryEntry(
        "writer", "user" if n % 2 == 0 else "assistant", "user", text or f"line {n}", float(n)
    )


async def test_a_replicas_error_answer_is_passed_on_not_called_unreachable(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    replica = await start_server(["writer"], store=redis_store(redis_server))
    raw = redis.Redis.from_url(redis_server.url)
    await raw.rpush("meshscope:history:broken", "{not json")
    await raw.hset("meshscope:session:broken", mapping={"user": "ann", "updated_at": 1.0, "turns": 1})
    await raw.aclose()
    orchestrator = static_orchestrator({"writer": [("127.0.0.1", replica.port)]})
    await orchestrator.start()
    try:
        async with OrchestratorClient(orchestrator.address) as client:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await client.get_session("broken")
    finally:
        await orchestrator.stop()
    assert failure.value.code() == grpc.StatusCode.DATA_LOSS
    assert failure.value.details() == (
        "stored transcript of session 'broken' is corrupt at line 0: JSONDecodeError"
    )
    # The replica's reason is passed on with its status.
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_CORRUPT_STATE


def test_meshscope_sessions_show_and_list_page_through(redis_server: RedisDevServer, tmp_path: Path) -> None:
    agents = start_agents(["--agents", "echo"], {"REDIS_URL": redis_server.url})
    orchestrator = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml", "agents: [echo]\n", {"echo": agents.address}
        )
        texts = [big_text(n) for n in range(3)]

        async def fill() -> None:
            async with OrchestratorClient(orchestrator.address) as client:
                for text in texts:
                    [_ async for _ in client.run("echo", text, session_id="big", user_id="ann")]
            store = redis_store(redis_server)
            for n in range(150):  # more sessions than one page lists
                await store.append_history("many", f"s{n:03}", [_entry(0, f"hello {n}")])
            await store.close()

        asyncio.run(fill())
        env = {"MESHSCOPE_ORCHESTRATOR": orchestrator.address}
        shown = run_cli(["sessions", "show", "big"], env)
        assert shown.returncode == 0, shown.stderr[-2000:]
        lines = shown.stdout.splitlines()
        assert [line for line in lines if line.startswith("[user -> echo] ")] == [
            f"[user -> echo] {text}" for text in texts
        ]
        assert len(lines) == 6
        listed = run_cli(["sessions", "list", "--user", "many"], env)
        assert listed.returncode == 0, listed.stderr
        ids = [line.split()[0] for line in listed.stdout.splitlines()]
        assert len(ids) == 150
        assert sorted(ids) == [f"s{n:03}" for n in range(150)]
        assert "1 turn(s)" in listed.stdout
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()
