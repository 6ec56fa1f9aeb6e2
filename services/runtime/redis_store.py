"""The Redis session store: state, locks and history shared by every replica.

Environment (read by `StoreSettings.from_env`, meshscope.services.runtime.stores):
  REDIS_URL                          redis://host:port/db (unset: sessions stay in memory)
  MESHSCOPE_REDIS_PREFIX             key namespace                                  meshscope
  MESHSCOPE_REDIS_MAX_CONNECTIONS    connection pool size per process               50
  MESHSCOPE_REDIS_POOL_TIMEOUT_S     how long a command waits for a free pooled
                                     connection (then RESOURCE_EXHAUSTED, busy)      5
  MESHSCOPE_REDIS_SOCKET_TIMEOUT_S   time limit of one command                      2
  MESHSCOPE_REDIS_CONNECT_TIMEOUT_S  time limit of connecting                       2
  MESHSCOPE_SESSION_TTL_S            idle sessions expire after this (0: never)     0
  MESHSCOPE_SESSION_LOCK_TTL_S       a turn's lock lives this long unless renewed   30
  MESHSCOPE_SESSION_LOCK_WAIT_S      how long a turn waits for a busy session (0: fail at once)  0

Keys (every id component is escaped: "%" -> "%25", ":" -> "%3A"):
  {prefix}:state:{user}:{session}:{agent}   hash  data (AgentState JSON), version
  {prefix}:lock:{session}:{agent}           string owner token, with a TTL
  {prefix}:history:{session}                list of JSON transcript lines, oldest first
  {prefix}:session:{session}                hash  user, updated_at, turns
  {prefix}:session-agents:{session}         set of agent names that took part
  {prefix}:session-states:{session}         set of the state keys of the session (for delete)
  {prefix}:session-turns:{session}          set of the turn ids written (a retried write is not repeated)
  {prefix}:user-sessions:{user}             sorted set session -> updated_at (listing)
  {prefix}:store-id                         string: a random id of the store, the same for every replica
Every hot-path operation addresses its keys directly: no KEYS or SCAN. A turn costs
three round trips: take the lock, load the state, and one script that saves the state,
appends the transcript and releases the lock (`finish_turn`).

Every write a retry may repeat is safe to repeat: redis-py retries a command whose
connection failed or timed out (twice, with back-off), and the command may have run
before its reply was lost. Taking and releasing a lock compare owner tokens, and a
turn's write is keyed by its turn id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, ClassVar, TypeVar

import redis.asyncio as redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshscope.services.runtime.errors import CorruptState, StoreBusy, StoreUnavailable
from meshscope.services.runtime.state import (
    HistoryEntry,
    HistoryPage,
    SessionCursor,
    SessionInfo,
    SessionsPage,
    StateConflict,
    StateKey,
    StoredState,
    TurnWrite,
    TurnWritten,
)
from meshscope.services.runtime.stores import StoreSettings
from meshscope.telemetry.instruments import POOL_WAIT

T = TypeVar("T")

# The one write of a finished turn (and, with parts left out, of `save` and `append_history`):
# the versioned state, the transcript lines with the session's meta, agents and listing, and the
# release of the turn's lock, in one round trip. Keyed by the turn id (ARGV[1]) through the
# session's set of written turns, so a retry after a lost reply writes nothing twice.
# KEYS: state, session-states, history, session, session-agents, user-sessions, lock, session-turns
# ARGV: turn id ('': not keyed), lock owner ('': none), ttl ms, state data, expected version
#       (-1: no state), user, session, updated_at, n, n transcript lines (JSON), agent names
# Returns {repeated (0/1), new version (-1: none saved), conflicting version (-1: none)}.
_WRITE = """
local ttl = tonumber(ARGV[3])
local result = {0, -1, -1}
if ARGV[1] == '' or redis.call('SADD', KEYS[8], ARGV[1]) == 1 then
  local expected = tonumber(ARGV[5])
  if expected >= 0 then
    local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
    if version == expected then
      redis.call('HSET', KEYS[1], 'data', ARGV[4], 'version', version + 1)
      redis.call('SADD', KEYS[2], KEYS[1])
      result[2] = version + 1
      if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl); redis.call('PEXPIRE', KEYS[2], ttl) end
    else
      result[3] = version
    end
  end
  local count = tonumber(ARGV[9])
  if count > 0 then
    for i = 1, count do redis.call('RPUSH', KEYS[3], ARGV[9 + i]) end
    redis.call('HSET', KEYS[4], 'user', ARGV[6], 'updated_at', ARGV[8])
    redis.call('HINCRBY', KEYS[4], 'turns', 1)
    for i = 10 + count, #ARGV do redis.call('SADD', KEYS[5], ARGV[i]) end
    redis.call('ZADD', KEYS[6], ARGV[8], ARGV[7])
    if ttl > 0 then for k = 3, 6 do redis.call('PEXPIRE', KEYS[k], ttl) end end
  end
  if ARGV[1] ~= '' and ttl > 0 then redis.call('PEXPIRE', KEYS[8], ttl) end
else
  result[1] = 1
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[7]) == ARGV[2] then redis.call('DEL', KEYS[7]) end
return result
"""
# Taking a lock is repeatable too: a retried SET NX whose first attempt succeeded would find
# the lock taken (by this very owner) and report the session busy.
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1 end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_HISTORY_PAGE = """
local total = redis.call('LLEN', KEYS[1])
local first, limit, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, used, i = {}, 0, first
while i < total and #out < limit do
  local batch = redis.call('LRANGE', KEYS[1], i, i + math.min(limit - #out, 16) - 1)
  if #batch == 0 then break end
  for _, line in ipairs(batch) do
    if budget >= 0 and #out > 0 and used + #line > budget then return {total, out} end
    out[#out + 1] = line
    used = used + #line
    if #out >= limit then break end
  end
  i = i + #batch
end
return {total, out}
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class _PoolWaitTimeout(Exception):
    """No pooled connection became free within the pool's timeout."""


class _WaitingPool(BlockingConnectionPool):
    """A pool that is full makes a command wait for a connection, up to its timeout.

    redis-py's default pool raises "Too many connections" (a ConnectionError) the moment it
    is full, which reads as Redis being unreachable; its BlockingConnectionPool waits, but
    reports the end of the wait as a ConnectionError too. This tells that case apart, so a
    busy replica says it is busy and an unreachable Redis says it is unreachable. Each wait is
    recorded (meshscope.agent.redis.pool.wait, connecting included when a new connection opens).
    """

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
            POOL_WAIT.record(time.monotonic() - began)
            return connection
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):  # the pool's wait ran out
                raise _PoolWaitTimeout() from exc
            raise


def _part(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


class RedisSessionStore:
    """`SessionStore` on Redis via redis.asyncio with a connection pool."""

    shared: ClassVar[bool] = True
    """Every replica using this Redis sees every session (registered as meta)."""

    def __init__(self, settings: StoreSettings) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        pool = _WaitingPool.from_url(
            settings.redis_url,
            max_connections=settings.max_connections,
            timeout=settings.pool_timeout_s,
            socket_timeout=settings.socket_timeout_s or None,
            socket_connect_timeout=settings.connect_timeout_s or None,
            decode_responses=True,
            # A pooled connection may have died with a restarted Redis: reconnect and
            # retry a command twice before calling the store unreachable. Every write is
            # safe to repeat (see the module docstring).
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._client: Any = redis.Redis.from_pool(pool)
        self._write = self._client.register_script(_WRITE)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release = self._client.register_script(_RELEASE)
        self._renew = self._client.register_script(_RENEW)
        self._history_page = self._client.register_script(_HISTORY_PAGE)
        self._p = settings.prefix
        self._ttl_ms = int(settings.session_ttl_s * 1000)

    def _key(self, kind: str, *parts: str) -> str:
        return ":".join([self._p, kind, *(_part(p) for p in parts)])

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        # Redis failures become one clear UNAVAILABLE, never a traceback to a client.
        try:
            return await operation()
        except _PoolWaitTimeout:
            settings = self.settings
            if not await self._answering():
                # Every connection is stuck on a Redis that stopped answering (its commands
                # time out and retry for longer than this wait): unreachable, not busy.
                raise StoreUnavailable(
                    f"session store unreachable (Redis at {self._where()}): it does not answer, and all "
                    f"{settings.max_connections} connections of this replica are waiting on it"
                ) from None
            raise StoreBusy(
                f"session store busy: all {settings.max_connections} Redis connections of this replica "
                f"stayed in use for {settings.pool_timeout_s:g}s (MESHSCOPE_REDIS_MAX_CONNECTIONS, "
                "MESHSCOPE_REDIS_POOL_TIMEOUT_S)"
            ) from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"session store unreachable (Redis at {self._where()}): {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"session store error (Redis at {self._where()}): {exc}") from exc

    async def _answering(self) -> bool:
        """Whether Redis answers a PING, on a connection of its own, within one socket timeout.

        Asked only when a wait for a pooled connection ran out, to tell a busy replica (Redis
        answers; this replica has too few connections) from a Redis that stopped answering.
        """
        pool = self._client.connection_pool
        probe = pool.connection_class(**{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)})
        try:
            async with asyncio.timeout(self.settings.socket_timeout_s or None):
                await probe.connect()
                await probe.send_command("PING")
                await probe.read_response()
            return True
        except (RedisError, OSError, TimeoutError):
            return False
        finally:
            await probe.disconnect()

    def _where(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def load(self, key: StateKey) -> StoredState | None:
        state_key = self._key("state", key.user_id, key.session_id, key.agent)
        data, version = await self._call(lambda: self._client.hmget(state_key, "data", "version"))
        if data is None or version is None:
            return None
        return StoredState(data=data, version=int(version))

    async def save(self, key: StateKey, data: str, expected_version: int) -> int:
        written = await self._run_write(key, "", "", data, expected_version, ())
        if written.conflict is not None:
            raise StateConflict(key, expected_version, written.conflict)
        assert written.version is not None
        return written.version

    async def acquire(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        lock = self._key("lock", session_id, agent)
        return bool(await self._call(lambda: self._acquire(keys=[lock], args=[owner, int(ttl_s * 1000)])))

    async def renew(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        lock = self._key("lock", session_id, agent)
        return bool(await self._call(lambda: self._renew(keys=[lock], args=[owner, int(ttl_s * 1000)])))

    async def release(self, session_id: str, agent: str, owner: str) -> bool:
        lock = self._key("lock", session_id, agent)
        return bool(await self._call(lambda: self._release(keys=[lock], args=[owner])))

    async def append_history(self, user_id: str, session_id: str, entries: list[HistoryEntry]) -> None:
        if entries:
            await self._run_write(StateKey(user_id, session_id, entries[0].agent), "", "", "", -1, entries)

    async def finish_turn(self, write: TurnWrite) -> TurnWritten:
        expected = -1 if write.state is None else write.expected_version
        return await self._run_write(
            write.key, write.turn_id, write.turn_id, write.state or "", expected, write.entries
        )

    async def _run_write(
        self,
        key: StateKey,
        turn_id: str,
        owner: str,
        data: str,
        expected_version: int,
        entries: Sequence[HistoryEntry],
    ) -> TurnWritten:
        """One `_WRITE` script call (see there): `expected_version` -1 saves no state."""
        session = key.session_id
        keys = [
            self._key("state", key.user_id, session, key.agent),
            self._key("session-states", session),
            self._key("history", session),
            self._key("session", session),
            self._key("session-agents", session),
            self._key("user-sessions", key.user_id),
            self._key("lock", session, key.agent),
            self._key("session-turns", session),
        ]
        updated = max((e.at for e in entries), default=0.0)
        args: list[str | int | float] = [turn_id, owner, self._ttl_ms, data, expected_version]
        args += [key.user_id, session, updated, len(entries)]
        args += [json.dumps(asdict(e)) for e in entries]
        args += sorted({e.agent for e in entries})
        repeated, version, conflict = await self._call(lambda: self._write(keys=keys, args=args))
        return TurnWritten(
            version=None if version < 0 else int(version),
            conflict=None if conflict < 0 else int(conflict),
            repeated=bool(repeated),
        )

    async def history(
        self, session_id: str, start: int, limit: int, max_bytes: int | None = None
    ) -> HistoryPage:
        # One script, one round trip: only the lines that fit cross the network.
        budget = -1 if max_bytes is None else max_bytes
        history_key = self._key("history", session_id)
        total, lines = await self._call(
            lambda: self._history_page(keys=[history_key], args=[start, limit, budget])
        )
        return HistoryPage([_entry(session_id, start + n, line) for n, line in enumerate(lines)], int(total))

    async def sessions(self, user_id: str, limit: int, after: SessionCursor | None = None) -> SessionsPage:
        listing = self._key("user-sessions", user_id)
        listed: list[SessionInfo] = []
        while True:
            candidates = await self._call(functools.partial(self._ranked, listing, limit + 1, after))
            page = candidates[: limit - len(listed)]
            infos = await self._call(functools.partial(self._infos, [m for m, _ in page]))
            listed += [
                SessionInfo(m, user_id, float(score), info.turns, info.agents)
                for (m, score), info in zip(page, infos, strict=True)
                if info is not None
            ]
            more = len(candidates) > len(page)
            if len(listed) >= limit or not more:
                return SessionsPage(listed, more)
            # Sessions that expired (MESHSCOPE_SESSION_TTL_S) still ranked: read on past them.
            after = (page[-1][1], page[-1][0])

    async def _ranked(self, listing: str, count: int, after: SessionCursor | None) -> list[tuple[str, float]]:
        """Up to `count` (session, updated_at) of a listing after the cursor, newest first."""
        if after is None:
            found: list[tuple[str, float]] = await self._client.zrevrange(
                listing, 0, count - 1, withscores=True
            )
            return found
        # Keyset paging: a session updated meanwhile moves to the top and is not listed
        # twice, and none shifts past the cursor. Ties on the score come by id, descending.
        score, last = after
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(listing, score, score, withscores=True)
            pipe.zrevrangebyscore(listing, f"({score!r}", "-inf", start=0, num=count, withscores=True)
            ties, older = await pipe.execute()
        tied = sorted(((m, s) for m, s in ties if m < last), reverse=True)
        return [*tied, *older][:count]

    async def session(self, session_id: str) -> SessionInfo | None:
        (info,) = await self._call(functools.partial(self._infos, [session_id]))
        return info

    async def store_id(self) -> str:
        # Kept in the store itself, so replicas that reach one Redis by different URLs agree.
        key = f"{self._p}:store-id"
        mine = f"redis:{uuid.uuid4().hex}"
        earlier = await self._call(lambda: self._client.set(key, mine, nx=True, get=True))
        return str(earlier) if earlier is not None else mine

    async def _infos(self, session_ids: list[str]) -> list[SessionInfo | None]:
        """The summaries of `session_ids`, in one round trip (None for one that is gone)."""
        if not session_ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.hgetall(self._key("session", session_id))
                pipe.smembers(self._key("session-agents", session_id))
            replies = await pipe.execute()
        infos: list[SessionInfo | None] = []
        for session_id, meta, agents in zip(session_ids, replies[::2], replies[1::2], strict=True):
            if not meta:
                infos.append(None)
                continue
            infos.append(
                SessionInfo(
                    session_id,
                    meta.get("user", ""),
                    float(meta.get("updated_at", 0)),
                    int(meta.get("turns", 0)),
                    tuple(sorted(agents)),
                )
            )
        return infos

    async def delete_session(self, session_id: str) -> bool:
        meta_key = self._key("session", session_id)
        states_key = self._key("session-states", session_id)
        agents_key = self._key("session-agents", session_id)

        async def delete() -> bool:
            user = await self._client.hget(meta_key, "user")
            states = await self._client.smembers(states_key)
            agents = await self._client.smembers(agents_key)
            locks = [self._key("lock", session_id, a) for a in agents]
            turns = self._key("session-turns", session_id)
            keys = [
                self._key("history", session_id),
                meta_key,
                states_key,
                agents_key,
                turns,
                *states,
                *locks,
            ]
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(*keys)
                if user is not None:
                    pipe.zrem(self._key("user-sessions", user), session_id)
                deleted, *_ = await pipe.execute()
            # redis-py retries the transaction when its reply is lost, and the retry's DEL finds
            # nothing: whether there was a session is what was read before it.
            return int(deleted) > 0 or user is not None or bool(states) or bool(agents)

        return await self._call(delete)

    async def close(self) -> None:
        await self._client.aclose()


def _entry(session_id: str, index: int, raw: str) -> HistoryEntry:
    """A stored transcript line; `CorruptState` (DATA_LOSS) naming the session and the line."""
    try:
        fields = json.loads(raw)
        return HistoryEntry(
            agent=str(fields["agent"]),
            role=str(fields["role"]),
            name=str(fields["name"]),
            text=str(fields["text"]),
            at=float(fields["at"]),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptState(
            f"stored transcript of session {session_id!r} is corrupt at line {index}: {type(exc).__name__}"
        ) from None
