"""One contract, two backends: in memory and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from meshscope.services.runtime.errors import StoreUnavailable
from meshscope.services.runtime.redis_store import RedisSessionStore
from meshscope.services.runtime.state import (
    HistoryEntry,
    HistoryPage,
    InMemorySessionStore,
    SessionInfo,
    SessionStore,
    StateConflict,
    StateKey,
    StoredState,
    TurnWrite,
    TurnWritten,
    entry_size,
)
from meshscope.services.runtime.stores import StoreSettings
from meshscope.testing import RedisDevServer, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    backend: SessionStore
    if request.param == "memory":
        backend = InMemorySessionStore()
    else:  # a redis-server only for the Redis case
        redis_server: RedisDevServer = request.getfixturevalue("redis_server")
        backend = RedisSessionStore(StoreSettings(redis_url=redis_server.url, prefix="test"))
    yield backend
    await backend.close()


async def test_state_saves_are_versioned(store: SessionStore) -> None:
    key = StateKey("u1", "s1", "analyst")
    assert await store.load(key) is None
    assert await store.save(key, '{"n": 1}', 0) == 1
    assert await store.save(key, '{"n": 2}', 1) == 2
    with pytest.raises(StateConflict) as conflict:
        await store.save(key, '{"stale": true}', 1)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    loaded = await store.load(key)
    assert loaded is not None
    assert (loaded.data, loaded.version) == ('{"n": 2}', 2)
    # Concurrent writers over the same version: exactly one wins.
    other = StateKey("u1", "s2", "analyst")
    results = await asyncio.gather(*(store.save(other, str(i), 0) for i in range(6)), return_exceptions=True)
    assert sum(1 for r in results if r == 1) == 1
    assert sum(1 for r in results if isinstance(r, StateConflict)) == 5


async def test_ids_with_separators_do_not_collide(store: SessionStore) -> None:
    await store.save(StateKey("u", "a:b", "c"), "first", 0)
    await store.save(StateKey("u", "a", "b:c"), "second", 0)
    one, two = await store.load(StateKey("u", "a:b", "c")), await store.load(StateKey("u", "a", "b:c"))
    assert one is not None
    assert two is not None
    assert (one.data, two.data) == ("first", "second")


async def test_a_turn_is_written_once_and_releases_its_lock(store: SessionStore) -> None:
    key = StateKey("ann", "trip", "analyst")
    lines = (
        HistoryEntry("analyst", "user", "user", "plan", 10.0),
        HistoryEntry("analyst", "assistant", "analyst", "ok", 10.0),
    )
    assert await store.acquire("trip", "analyst", "turn-1", 30)
    assert await store.acquire("trip", "analyst", "turn-1", 30)  # a retried take of one's own lock
    write = TurnWrite(key, "turn-1", '{"n": 1}', 0, lines)
    assert await store.finish_turn(write) == TurnWritten(version=1)
    # The same write again (a retry after a lost reply): nothing is written twice.
    assert await store.finish_turn(write) == TurnWritten(version=None, repeated=True)
    assert [h.text for h in (await store.history("trip", 0, 1000)).entries] == ["plan", "ok"]
    assert [(s.turns, s.agents) for s in (await store.sessions("ann", 1000)).sessions] == [(1, ("analyst",))]
    loaded = await store.load(key)
    assert loaded is not None
    assert (loaded.data, loaded.version) == ('{"n": 1}', 1)
    # The write released the turn's lock; a stale writer's turn keeps its lines but not its state.
    assert await store.acquire("trip", "analyst", "turn-2", 30)
    stale = TurnWrite(key, "turn-2", '{"stale": true}', 0, lines[:1])
    assert await store.finish_turn(stale) == TurnWritten(version=None, conflict=1)
    assert len((await store.history("trip", 0, 1000)).entries) == 3
    loaded = await store.load(key)
    assert loaded is not None
    assert loaded.data == '{"n": 1}'
    assert await store.acquire("trip", "analyst", "turn-3", 30)
    # A turn with no state to save (it failed before it had one) still writes its lines.
    assert await store.finish_turn(TurnWrite(key, "turn-3", None, 0, lines[:1])) == TurnWritten(version=None)
    assert [s.turns for s in (await store.sessions("ann", 1000)).sessions] == [3]
    assert await store.delete_session("trip")
    # A deleted session forgets its turns with it.
    assert await store.finish_turn(TurnWrite(key, "turn-1", "{}", 0, lines)) == TurnWritten(version=1)


async def test_locks_belong_to_their_owner_and_expire(store: SessionStore) -> None:
    assert await store.acquire("s", "analyst", "owner-a", 30)
    assert not await store.acquire("s", "analyst", "owner-b", 30)
    assert await store.acquire("s", "writer", "owner-b", 30)  # another agent of the session
    assert not await store.release("s", "analyst", "owner-b")
    assert await store.renew("s", "analyst", "owner-a", 30)
    assert not await store.renew("s", "analyst", "owner-b", 30)
    assert await store.release("s", "analyst", "owner-a")
    assert await store.acquire("s", "analyst", "owner-b", 0.3)
    started = time.monotonic()

    async def try_take() -> bool:
        return await store.acquire("s", "analyst", "owner-c", 30)

    assert await wait_for(try_take, lambda taken: taken, timeout=5)
    assert time.monotonic() - started < 3


async def test_history_sessions_and_delete(store: SessionStore) -> None:
    await store.save(StateKey("ann", "trip", "analyst"), "{}", 0)
    await store.save(StateKey("ann", "trip", "writer"), "{}", 0)
    await store.append_history(
        "ann",
        "trip",
        [
            HistoryEntry("analyst", "user", "user", "plan a trip", 10.0),
            HistoryEntry("analyst", "assistant", "analyst", "ok", 10.5),
        ],
    )
    await store.append_history(
        "ann",
        "trip",
        [
            HistoryEntry("writer", "user", "user", "write it", 20.0),
            HistoryEntry("writer", "assistant", "writer", "done", 20.5),
        ],
    )
    await store.append_history("ann", "other", [HistoryEntry("coder", "user", "user", "code", 30.0)])
    await store.append_history("bob", "his", [HistoryEntry("coder", "user", "user", "hi", 5.0)])
    history = (await store.history("trip", 0, 100)).entries
    assert [(h.agent, h.role, h.text) for h in history] == [
        ("analyst", "user", "plan a trip"),
        ("analyst", "assistant", "ok"),
        ("writer", "user", "write it"),
        ("writer", "assistant", "done"),
    ]
    listed = (await store.sessions("ann", 100)).sessions
    assert [s.session_id for s in listed] == ["other", "trip"]
    trip = listed[1]
    assert (trip.turns, trip.agents, trip.updated_at) == (2, ("analyst", "writer"), 20.5)
    await store.acquire("trip", "analyst", "holder", 30)
    assert await store.delete_session("trip")
    assert await store.history("trip", 0, 100) == HistoryPage([], 0)
    assert await store.session("trip") is None
    assert await store.load(StateKey("ann", "trip", "analyst")) is None
    assert await store.load(StateKey("ann", "trip", "writer")) is None
    assert await store.acquire("trip", "analyst", "someone-else", 30)  # the lock went with it
    assert [s.session_id for s in (await store.sessions("ann", 100)).sessions] == ["other"]
    assert [s.session_id for s in (await store.sessions("bob", 100)).sessions] == ["his"]
    assert not await store.delete_session("trip")


def _line(n: int, text: str = "") -> HistoryEntry:
    return HistoryEntry(
        "analyst", "user" if n % 2 == 0 else "assistant", "user", text or f"line {n}", float(n)
    )


async def test_history_pages_by_offset_count_and_bytes(store: SessionStore) -> None:
    for turn in range(5):
        await store.append_history("ann", "long", [_line(2 * turn), _line(2 * turn + 1)])
    first = await store.history("long", 0, 4)
    assert [e.text for e in first.entries] == ["line 0", "line 1", "line 2", "line 3"]
    assert first.total == 10
    rest = await store.history("long", 4, 100)
    assert [e.text for e in rest.entries] == [f"line {n}" for n in range(4, 10)]
    assert (await store.history("long", 10, 4)).entries == []
    assert (await store.history("long", 99, 4)).entries == []
    # A line appended while paging lands after the pages already read: offsets are stable.
    await store.append_history("ann", "long", [_line(10)])
    assert [e.text for e in (await store.history("long", 8, 100)).entries] == ["line 8", "line 9", "line 10"]
    assert (await store.history("long", 8, 100)).total == 11

    # By bytes: lines whose stored size fits the budget, never fewer than one.
    size = entry_size(_line(0, "x" * 1000))
    await store.append_history("ann", "big", [_line(n, "x" * 1000) for n in range(6)])
    two = await store.history("big", 0, 100, max_bytes=2 * size + size // 2)
    assert len(two.entries) == 2
    assert two.total == 6
    one = await store.history("big", 5, 100, max_bytes=10)
    assert [e.at for e in one.entries] == [5.0]  # alone larger than the budget: still returned
    assert len((await store.history("big", 2, 3, max_bytes=100 * size)).entries) == 3


async def test_sessions_and_session_summaries_page_newest_first(store: SessionStore) -> None:
    # 7 sessions; two pairs share an updated_at, so ties are ordered by session id, descending.
    times = {"s0": 10.0, "s1": 20.0, "s2": 20.0, "s3": 30.0, "s4": 40.0, "s5": 40.0, "s6": 50.0}
    for sid, at in times.items():
        await store.append_history("ann", sid, [HistoryEntry("coder", "user", "user", sid, at)])
    await store.append_history("bob", "b", [HistoryEntry("coder", "user", "user", "b", 99.0)])
    expected = ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]
    seen: list[str] = []
    after: tuple[float, str] | None = None
    pages = 0
    while True:
        page = await store.sessions("ann", 2, after)
        pages += 1
        seen += [s.session_id for s in page.sessions]
        if not page.more:
            break
        last = page.sessions[-1]
        after = (last.updated_at, last.session_id)
        if pages == 2:
            # s1 is updated while the listing is paged: it moves to the top, and later pages
            # neither repeat a session nor skip one that was not updated.
            await store.append_history("ann", "s1", [HistoryEntry("writer", "user", "user", "again", 60.0)])
    assert seen == ["s6", "s5", "s4", "s3", "s2", "s0"]
    assert pages == 3
    everything = await store.sessions("ann", 100)
    assert [s.session_id for s in everything.sessions] == ["s1", *[e for e in expected if e != "s1"]]
    assert not everything.more
    assert (await store.sessions("ann", 7)).more is False
    assert (await store.sessions("ann", 6)).more is True
    assert await store.session("s1") == SessionInfo("s1", "ann", 60.0, 2, ("coder", "writer"))
    assert await store.session("nope") is None
    assert (await store.sessions("nobody", 10)).sessions == []


async def test_store_ids_name_the_storage(store: SessionStore, request: pytest.FixtureRequest) -> None:
    mine = await store.store_id()
    assert mine and await store.store_id() == mine
    if isinstance(store, RedisSessionStore):
        same = RedisSessionStore(store.settings)  # another replica of the same Redis
        assert await same.store_id() == mine
        await same.close()
    else:
        assert await InMemorySessionStore().store_id() != mine


async def test_an_unreachable_redis_is_a_clear_store_error() -> None:
    from meshscope.testing import free_port

    store = RedisSessionStore(
        StoreSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=1)
    )
    with pytest.raises(StoreUnavailable, match=r"session store unreachable \(Redis at 127.0.0.1:\d+\)"):
        await store.load(StateKey("u", "s", "a"))
    await store.close()


async def test_no_acknowledged_save_is_lost_when_redis_restarts_mid_load(
    redis_server: RedisDevServer,
) -> None:
    store = RedisSessionStore(
        StoreSettings(redis_url=redis_server.url, socket_timeout_s=1, connect_timeout_s=1)
    )
    acknowledged: dict[str, tuple[str, int]] = {}
    restarted = asyncio.Event()
    saves_before_restart: list[str] = []
    saves_after_restart: list[str] = []

    async def writer(n: int) -> None:
        key = StateKey("u", f"s{n}", "analyst")
        version = 0
        for step in range(40):
            data = f'{{"writer": {n}, "step": {step}}}'
            try:
                version = await store.save(key, data, version)
                acknowledged[key.session_id] = (data, version)
                if restarted.is_set():
                    saves_after_restart.append(key.session_id)
                else:
                    saves_before_restart.append(key.session_id)
            except (StoreUnavailable, StateConflict):
                # Unreachable, or the save ran but its reply was lost and the retry met
                # its own write: not acknowledged either way; carry on from what is stored.
                loaded = await _load_when_back(store, key)
                version = loaded.version if loaded else 0
            if step == 10 and n == 0:
                await asyncio.to_thread(redis_server.restart)
                restarted.set()

    await asyncio.gather(*(writer(n) for n in range(8)))
    assert restarted.is_set()
    # Saves went on around the restart (some may have failed or been retried through it).
    assert saves_before_restart and saves_after_restart
    for session_id, (data, version) in acknowledged.items():
        loaded = await store.load(StateKey("u", session_id, "analyst"))
        assert loaded is not None
        # The acknowledged save is there, or a later one whose reply was lost in the restart.
        assert loaded.version >= version
        if loaded.version == version:
            assert loaded.data == data
    await store.close()


async def _load_when_back(store: RedisSessionStore, key: StateKey) -> StoredState | None:
    async def attempt() -> tuple[bool, StoredState | None]:
        try:
            return True, await store.load(key)
        except StoreUnavailable:
            return False, None

    _, loaded = await wait_for(attempt, lambda result: result[0], timeout=20, interval=0.05)
    return loaded


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REDIS_URL": "localhost:6379"},
            "REDIS_URL='localhost:6379' is not valid: expected redis://host:port[/db]",
        ),
        ({"MESHSCOPE_REDIS_MAX_CONNECTIONS": "0"}, "MESHSCOPE_REDIS_MAX_CONNECTIONS='0' is not valid"),
        (
            {"REDIS_URL": "redis://localhost:abc"},
            "REDIS_URL='redis://localhost:abc' is not valid: Port could not be cast to integer value",
        ),
        ({"REDIS_URL": "redis://[::1"}, "REDIS_URL='redis://[::1' is not valid: Invalid IPv6 URL"),
        ({"MESHSCOPE_SESSION_LOCK_WAIT_S": "-1"}, "MESHSCOPE_SESSION_LOCK_WAIT_S='-1' is not valid"),
        ({"MESHSCOPE_SESSION_LOCK_TTL_S": "0.5"}, "MESHSCOPE_SESSION_LOCK_TTL_S must be at least 1 second"),
    ],
)
def test_bad_store_settings(env: dict[str, str], message: str) -> None:
    from meshscope.services.runtime.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        StoreSettings.from_env(env)
    assert str(error.value).startswith(message)
