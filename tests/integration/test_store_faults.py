"""Field faults of the session store, reproduced with a real redis-server and real gRPC.

Each test is a reported input ([5/13]) kept as a test: a full connection pool is a wait,
not an outage; a lock whose request was on the wire when the caller cancelled is
released; a write retried after its reply was lost is not applied twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest

from meshscope.discovery.model import Instance, replica_id_for
from meshscope.orchestrator.calls import stream_step
from meshscope.orchestrator.pool import EndpointPool
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.errors import StoreBusy
from meshscope.services.runtime.redis_store import RedisSessionStore
from meshscope.services.runtime.server import AgentServer
from meshscope.services.runtime.state import StateKey
from meshscope.services.runtime.stores import StoreSettings
from meshscope.testing import FaultProxy, RedisDevServer, wait_for
from meshscope.v1 import agent_pb2, common_pb2
from meshscope.wire import declared_reason, user_message
from tests.conftest import StartServer

pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest.fixture
async def proxies(redis_server: RedisDevServer) -> AsyncIterator[list[FaultProxy]]:
    """Proxies a test puts in front of its redis-server; closed after it."""
    made: list[FaultProxy] = []
    yield made
    for proxy in made:
        await proxy.close()


async def _proxied(redis_server: RedisDevServer, made: list[FaultProxy], **faults: Any) -> FaultProxy:
    host, port = redis_server.url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    proxy = FaultProxy(host, int(port), **faults)
    await proxy.start()
    made.append(proxy)
    return proxy


class _HoldOnce:
    """A `hold_reply` rule: the reply to the first request that contains every marker is held
    for `hold_s` seconds (past the test's socket timeout); later ones pass."""

    def __init__(self, *markers: bytes, hold_s: float = 1.0) -> None:
        self.markers = markers
        self.hold_s = hold_s
        self.held = 0

    def __call__(self, chunk: bytes) -> float:
        if self.held or not all(marker in chunk for marker in self.markers):
            return 0.0
        self.held += 1
        return self.hold_s


async def test_a_full_pool_waits_instead_of_failing_turns(
    start_server: StartServer, redis_server: RedisDevServer
) -> None:
    """40 concurrent turns on 40 sessions through a pool of 2 connections: all succeed."""
    store = RedisSessionStore(StoreSettings(redis_url=redis_server.url, max_connections=2))
    server = await start_server(["analyst"], store=store)
    async with AgentClient(server.address) as client:
        results = await asyncio.gather(
            *(client.reply("analyst", f"question {n}", session_id=f"pool-{n}") for n in range(40)),
            return_exceptions=True,
        )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert server.runner.stats.completed == 40
    checker = RedisSessionStore(StoreSettings(redis_url=redis_server.url))
    assert len((await checker.history("pool-39", 0, 1000)).entries) == 2
    await checker.close()


async def test_a_pool_that_stays_full_is_busy_not_unreachable(
    redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """When the wait for a connection runs out, the error says the replica is busy, not that
    Redis is unreachable (it is not)."""
    slow = await _proxied(redis_server, proxies, delay_s=0.4)
    store = RedisSessionStore(
        StoreSettings(
            redis_url=f"redis://127.0.0.1:{slow.port}/0",
            max_connections=1,
            pool_timeout_s=0.2,
            socket_timeout_s=5,  # Redis answers, slowly: a PING asked when the wait runs out gets its answer
        )
    )
    results = await asyncio.gather(
        store.load(StateKey("u", "a", "analyst")), store.load(StateKey("u", "b", "analyst")),
        return_exceptions=True,
    )  # fmt: skip
    await store.close()
    assert results.count(None) == 1  # one got the connection and was answered
    busy = next(r for r in results if isinstance(r, BaseException))
    assert isinstance(busy, StoreBusy), busy
    assert busy.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "all 1 Redis connections of this replica stayed in use for 0.2s" in busy.message


async def test_a_cancel_while_the_lock_is_being_taken_leaves_the_session_free(
    start_server: StartServer, redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """A Redis 50 ms away; the caller cancels while the lock's request is on its way (Redis
    applies it): the session is usable again within a second, not after the lock's TTL."""
    lock_sent = asyncio.Event()

    def watch(chunk: bytes) -> None:
        if b":lock:far:analyst" in chunk:
            lock_sent.set()

    far = await _proxied(redis_server, proxies, delay_s=0.05, on_client_chunk=watch)
    store = RedisSessionStore(StoreSettings(redis_url=f"redis://127.0.0.1:{far.port}/0"))
    server = await start_server(["analyst"], store=store, lock_ttl_s=30)
    async with AgentClient(server.address) as client:
        await client.reply("analyst", "warm up", session_id="warm")  # scripts loaded, connections open
        call = asyncio.create_task(client.reply("analyst", "first", session_id="far"))
        await asyncio.wait_for(lock_sent.wait(), 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        cancelled_at = time.monotonic()
        # The cancel reached the turn while its lock request was still on the wire.
        await wait_for(_value(lambda: server.runner.stats.cancelled), lambda n: n == 1, timeout=5)

        async def try_turn() -> str:
            try:
                return str((await client.reply("analyst", "second", session_id="far")).text)
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)

        text = await wait_for(try_turn, lambda result: result != "FAILED_PRECONDITION", timeout=5)
        assert time.monotonic() - cancelled_at < 1.0, "the session stayed busy after the cancel"
    assert "turn 1" in text  # the cancelled turn never ran


async def test_a_write_whose_reply_is_lost_is_applied_once(
    start_server: StartServer, redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """The reply to the turn's write is held past the socket timeout once: redis-py retries
    the write, which must not append the turn again; the caller is told the turn succeeded."""
    hold_first_write = _HoldOnce(b"EVALSHA", b":history:lost")
    lossy = await _proxied(redis_server, proxies, hold_reply=hold_first_write)
    store = RedisSessionStore(
        StoreSettings(redis_url=f"redis://127.0.0.1:{lossy.port}/0", socket_timeout_s=0.5)
    )
    server = await start_server(["analyst"], store=store)
    async with AgentClient(server.address) as client:
        await client.reply("analyst", "warm up", session_id="warm")  # scripts loaded: the held one applies
        reply = await client.reply("analyst", "remember 42", session_id="lost", user_id="ann")
    assert hold_first_write.held == 1
    assert "turn 1" in reply.text
    checker = RedisSessionStore(StoreSettings(redis_url=redis_server.url))
    history = (await checker.history("lost", 0, 1000)).entries
    assert [(h.role, h.text[:11]) for h in history] == [("user", "remember 42"), ("assistant", "analyst: tu")]
    (listed,) = [s for s in (await checker.sessions("ann", 1000)).sessions if s.session_id == "lost"]
    assert listed.turns == 1
    saved = await checker.load(StateKey("ann", "lost", "analyst"))
    assert saved is not None and saved.version == 1
    assert await checker.acquire("lost", "analyst", "next", 30)  # the retry released the lock
    await checker.close()


async def test_a_write_never_confirmed_says_so_and_is_still_applied_once(
    start_server: StartServer, redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """Every reply to the turn's write is held past the socket timeout: the caller gets the
    whole reply and then an error saying the save was not confirmed; the transcript holds the
    turn once all the same."""

    def hold_writes(chunk: bytes) -> float:
        return 1.0 if b"EVALSHA" in chunk and b":history:lost" in chunk else 0.0

    lossy = await _proxied(redis_server, proxies, hold_reply=hold_writes)
    store = RedisSessionStore(
        StoreSettings(redis_url=f"redis://127.0.0.1:{lossy.port}/0", socket_timeout_s=0.3)
    )
    server = await start_server(["analyst"], store=store)
    events = []
    async with AgentClient(server.address) as client:
        await client.reply("analyst", "warm up", session_id="warm")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for event in client.invoke("analyst", "remember 42", session_id="lost"):
                events.append(event)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the reply was complete, but the session store did not confirm the turn was saved" in (
        failed.value.details() or ""
    )
    assert any(e.HasField("reply_end") for e in events)
    assert events[-1].HasField("error")
    assert events[-1].error.reason == common_pb2.ERROR_REASON_STORE_UNAVAILABLE
    assert declared_reason(failed.value.trailing_metadata()) == common_pb2.ERROR_REASON_STORE_UNAVAILABLE
    checker = RedisSessionStore(StoreSettings(redis_url=redis_server.url))
    assert len((await checker.history("lost", 0, 1000)).entries) == 2
    await checker.close()


def _value(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def probe() -> T:
        return read()

    return probe


async def test_a_replica_whose_store_pool_stays_full_is_passed_over_before_the_first_event(
    start_server: StartServer, redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """STORE_BUSY says the replica is busy, not broken: the orchestrator's step goes to another
    replica instead of failing the run, and ejects nobody."""
    on_wire = asyncio.Event()
    slow = await _proxied(redis_server, proxies, delay_s=0.6, on_client_chunk=lambda _: on_wire.set())
    busy_store = RedisSessionStore(
        StoreSettings(
            redis_url=f"redis://127.0.0.1:{slow.port}/0",
            max_connections=1,
            pool_timeout_s=0.1,
            socket_timeout_s=5,
        )
    )
    busy = await start_server(["analyst"], store=busy_store)
    good = await start_server(["analyst"], store=RedisSessionStore(StoreSettings(redis_url=redis_server.url)))
    pool = EndpointPool()
    pool.update("analyst", [_instance(busy), _instance(good)])
    by_port = {e.instance.port: e for e in pool.endpoints("analyst")}
    for _ in range(3):  # the good replica looks loaded, so power-of-two-choices tries the busy one first
        pool.stream_started(by_port[good.port])
    holding = asyncio.create_task(
        busy_store.load(StateKey("u", "other", "analyst"))
    )  # takes its one connection
    await asyncio.wait_for(on_wire.wait(), 5)
    request = agent_pb2.InvokeRequest(agent="analyst", input=user_message("hello"), session_id="s")
    events = [e async for e in stream_step(pool, request, deadline=time.monotonic() + 30, attempts=2)]
    assert {e.endpoint.instance.port for e in events} == {good.port}
    assert events[-1].head.WhichOneof("kind") == "reply_end"
    # The busy replica was tried first, and said so: passed over only because its status declared
    # STORE_BUSY (a RESOURCE_EXHAUSTED without a reason is gRPC's message limit, and fails the step).
    assert busy.runner.stats.failed == 1
    assert all(e.available(time.monotonic()) for e in pool.endpoints("analyst"))  # nobody ejected
    await holding
    await pool.close()


def _instance(server: AgentServer) -> Instance:
    return Instance("analyst", replica_id_for("analyst", "127.0.0.1", server.port), "127.0.0.1", server.port)


async def test_a_delete_whose_reply_is_lost_still_reports_the_session_deleted(
    start_server: StartServer, redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """Review of [5/13]: the reply to DeleteSession's MULTI/DEL/EXEC is held past the socket
    timeout once. redis-py retries the transaction, whose DEL now finds nothing, so the agent
    answers deleted=False (`meshscope sessions delete` prints "no session" and exits 1) for a
    session it did delete: a retried write that already happened, and a caller told otherwise."""
    hold_first_delete = _HoldOnce(b"MULTI", b":history:gone")
    lossy = await _proxied(redis_server, proxies, hold_reply=hold_first_delete)
    store = RedisSessionStore(
        StoreSettings(redis_url=f"redis://127.0.0.1:{lossy.port}/0", socket_timeout_s=0.5)
    )
    server = await start_server(["analyst"], store=store)
    async with AgentClient(server.address) as client:
        await client.reply("analyst", "remember 42", session_id="gone")
        deleted = await client.delete_session("gone")
    assert hold_first_delete.held == 1
    checker = RedisSessionStore(StoreSettings(redis_url=redis_server.url))
    assert await checker.session("gone") is None  # it was deleted...
    await checker.close()
    assert deleted, "the session was deleted, but the caller was told there was none"


async def test_a_stalled_redis_is_unreachable_not_a_busy_pool(
    redis_server: RedisDevServer, proxies: list[FaultProxy]
) -> None:
    """Review of [5/13]: Redis stops answering (SIGSTOPped, a network black hole). The few
    commands holding the pool's connections time out and retry (socket timeout x 3 plus
    back-off), longer than the pool wait; every other command's wait runs out first and
    reports StoreBusy, RESOURCE_EXHAUSTED "raise MESHSCOPE_REDIS_MAX_CONNECTIONS", although
    Redis is unreachable. Seen with real processes: 40 turns, pool of 2, Redis SIGSTOPped ->
    38 RESOURCE_EXHAUSTED "busy", 2 UNAVAILABLE. The defaults have the same ratio (2 s socket
    timeout x 3 attempts > 5 s pool wait); so do these (0.4 s x 3 > 1 s)."""
    stalled = False

    def black_hole(chunk: bytes) -> float:
        return 30.0 if stalled else 0.0

    proxy = await _proxied(redis_server, proxies, hold_reply=black_hole)
    store = RedisSessionStore(
        StoreSettings(
            redis_url=f"redis://127.0.0.1:{proxy.port}/0",
            max_connections=2,
            pool_timeout_s=1.0,
            socket_timeout_s=0.4,
        )
    )
    await asyncio.gather(*(store.load(StateKey("u", f"s{n}", "analyst")) for n in range(4)))  # 2 open
    stalled = True
    results = await asyncio.gather(
        *(store.load(StateKey("u", f"s{n}", "analyst")) for n in range(10)), return_exceptions=True
    )
    await store.close()
    busy = [r for r in results if isinstance(r, StoreBusy)]
    assert all(isinstance(r, Exception) for r in results)
    assert busy == [], f"{len(busy)} of 10 commands said 'busy' while Redis was unreachable"
