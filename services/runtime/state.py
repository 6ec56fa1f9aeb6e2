"""Session storage: agent state, per-session locks and session history.

One interface, two backends (docs/architecture.md, "Sessions"): in memory (the default; one
process) and Redis (`REDIS_URL`; every replica shares it). Both pass the
same contract tests (tests/integration/test_stores.py).

- State: AgentScope `AgentState` JSON per (user, session, agent). Saves are
  versioned: a save names the version it loaded, and a stale writer gets
  `StateConflict` instead of clobbering newer state.
- Locks: one turn per (session, agent) at a time, across replicas: a lease
  with an owner token and a TTL, renewed while the turn runs, released
  only by its owner.
- History: the cross-agent transcript of a session, in order, read a page at a
  time (by offset, count and bytes); sessions are listed per user a page at a
  time (keyset: newest first) and deleted whole (state, history, locks).
- A finished turn is written in one step (`finish_turn`): its state, its
  transcript lines and the release of its lock, applied at most once per
  turn id, so a write retried after its reply was lost is not applied twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class StateKey:
    """Whose state: one agent's view of one session of one user."""

    user_id: str
    session_id: str
    agent: str


@dataclass(frozen=True, slots=True)
class StoredState:
    """A saved state and the version it was saved as (1, 2, ...)."""

    data: str
    version: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a session's transcript: who said what, when."""

    agent: str
    role: str
    """"user" for the turn's input, "assistant" for the agent's reply."""
    name: str
    text: str
    at: float
    """Unix time, seconds."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as listed for its user."""

    session_id: str
    user_id: str
    updated_at: float
    turns: int
    agents: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class TurnWrite:
    """Everything a finished turn writes, applied at most once."""

    key: StateKey
    turn_id: str
    """The owner token of the turn's lock: unique per turn and made before the lock was asked
    for, so a write repeated after a lost reply is recognised (and the lock released by it)."""
    state: str | None
    """AgentState JSON to save over `expected_version`; None when there is no state to save."""
    expected_version: int
    entries: tuple[HistoryEntry, ...]
    """The turn's transcript lines (its input, and its reply when there was one)."""


@dataclass(frozen=True, slots=True)
class TurnWritten:
    """What `finish_turn` did."""

    version: int | None
    """The state's new version; None when no state was saved (none given, a conflict, or `repeated`)."""
    conflict: int | None = None
    """The version found instead of `expected_version`: another writer saved first, nothing was saved."""
    repeated: bool = False
    """An earlier attempt of the same turn had already written it: nothing was written again."""


SessionCursor = tuple[float, str]
"""Where a session listing stands: the last listed session's (updated_at, session_id)."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A slice of a transcript and the transcript's length when it was read."""

    entries: list[HistoryEntry]
    total: int
    """Lines in the whole transcript."""


@dataclass(frozen=True, slots=True)
class SessionsPage:
    """A slice of a user's session listing."""

    sessions: list[SessionInfo]
    more: bool
    """Whether sessions follow the last one here."""


def entry_size(entry: HistoryEntry) -> int:
    """Bytes a transcript line takes stored (its JSON, as the Redis store keeps it)."""
    return len(json.dumps(asdict(entry)))


def listed_after(info: SessionInfo, after: SessionCursor | None) -> bool:
    """Whether `info` comes after the cursor in listing order (newest first, then id descending)."""
    return after is None or (info.updated_at, info.session_id) < after


class StateConflict(Exception):
    """The state was saved by someone else since it was loaded."""

    def __init__(self, key: StateKey, expected: int, actual: int) -> None:
        super().__init__(
            f"state of session {key.session_id!r} for agent {key.agent!r} is at version "
            f"{actual}, not {expected}: another writer saved it first"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class SessionStore(Protocol):
    """Where sessions live between turns.

    A backend that cannot reach its storage raises `StoreUnavailable` (UNAVAILABLE
    with a message naming it); the turn runner relies on that and adds no wrapping.
    """

    shared: ClassVar[bool]
    """Whether other processes using the same backend see the same sessions (registered as meta)."""

    async def load(self, key: StateKey) -> StoredState | None:
        """The latest saved state, or None for a new session."""
        ...

    async def save(self, key: StateKey, data: str, expected_version: int) -> int:
        """Save `data` over `expected_version` (0: must not exist yet); returns the new version."""
        ...

    async def acquire(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        """Take the (session, agent) lock for `owner` unless someone else holds it.

        Asking again as the holder succeeds (and restarts the TTL): a retry of a request
        that was applied before its reply was lost must not find the session busy."""
        ...

    async def renew(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lock; False when it is no longer `owner`'s."""
        ...

    async def release(self, session_id: str, agent: str, owner: str) -> bool:
        """Release the lock only if `owner` holds it."""
        ...

    async def append_history(self, user_id: str, session_id: str, entries: list[HistoryEntry]) -> None:
        """Append a finished turn's lines to the session's transcript."""
        ...

    async def finish_turn(self, write: TurnWrite) -> TurnWritten:
        """Save the turn's state (versioned), append its lines and release its lock, as one step.

        At most once per `write.turn_id`: a repeat (a retry after a lost reply) writes nothing
        and answers `repeated`, but still releases the lock. A state conflict saves no state but
        still appends the lines.
        """
        ...

    async def history(
        self, session_id: str, start: int, limit: int, max_bytes: int | None = None
    ) -> HistoryPage:
        """Lines `start`.. of the session's transcript, oldest first: at most `limit` lines, and
        no more than fit in `max_bytes` (their stored size), but always the first one (empty
        past the end). The transcript only grows at its end, so offsets are stable."""
        ...

    async def sessions(self, user_id: str, limit: int, after: SessionCursor | None = None) -> SessionsPage:
        """At most `limit` of the user's sessions, most recently updated first (ties: session id,
        descending), starting after `after` (the last one of the previous page)."""
        ...

    async def session(self, session_id: str) -> SessionInfo | None:
        """The session's summary (None when there is no such session)."""
        ...

    async def store_id(self) -> str:
        """Identifies the storage: the same for every store object on the same storage."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session's states, history and locks; False when there was nothing."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass(slots=True)
class _Session:
    user_id: str
    updated_at: float = 0.0
    turns: int = 0
    agents: list[str] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    turn_ids: set[str] = field(default_factory=set)
    """Turns already written by `finish_turn` (a repeat writes nothing)."""


class InMemorySessionStore:
    """Sessions in this process's memory: the default for one process and for tests."""

    shared: ClassVar[bool] = False
    """Replicas of an agent on this store do not see each other's sessions (registered as meta)."""

    def __init__(self) -> None:
        self._states: dict[StateKey, StoredState] = {}
        self._locks: dict[tuple[str, str], tuple[str, float]] = {}
        self._sessions: dict[str, _Session] = {}
        self._id = f"memory:{uuid.uuid4().hex}"
        """Each in-memory store is its own storage."""

    async def load(self, key: StateKey) -> StoredState | None:
        return self._states.get(key)

    async def save(self, key: StateKey, data: str, expected_version: int) -> int:
        return self._save(key, data, expected_version)

    def _save(self, key: StateKey, data: str, expected_version: int) -> int:
        # Synchronous: no await between the check and the write, so atomic on the event loop.
        current = self._states.get(key)
        actual = current.version if current else 0
        if actual != expected_version:
            raise StateConflict(key, expected_version, actual)
        self._states[key] = StoredState(data=data, version=actual + 1)
        return actual + 1

    def _holder(self, session_id: str, agent: str) -> str | None:
        held = self._locks.get((session_id, agent))
        if held is None or held[1] <= time.monotonic():
            return None
        return held[0]

    async def acquire(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        if self._holder(session_id, agent) not in (None, owner):
            return False
        self._locks[(session_id, agent)] = (owner, time.monotonic() + ttl_s)
        return True

    async def renew(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        if self._holder(session_id, agent) != owner:
            return False
        self._locks[(session_id, agent)] = (owner, time.monotonic() + ttl_s)
        return True

    async def release(self, session_id: str, agent: str, owner: str) -> bool:
        if self._holder(session_id, agent) != owner:
            return False
        del self._locks[(session_id, agent)]
        return True

    async def append_history(self, user_id: str, session_id: str, entries: list[HistoryEntry]) -> None:
        self._append(self._sessions.setdefault(session_id, _Session(user_id)), entries)

    async def finish_turn(self, write: TurnWrite) -> TurnWritten:
        key = write.key
        session = self._sessions.setdefault(key.session_id, _Session(key.user_id))
        result = TurnWritten(version=None, repeated=True)
        if write.turn_id not in session.turn_ids:
            session.turn_ids.add(write.turn_id)
            result = TurnWritten(version=None)
            if write.state is not None:
                try:
                    result = TurnWritten(version=self._save(key, write.state, write.expected_version))
                except StateConflict as conflict:
                    result = TurnWritten(version=None, conflict=conflict.actual)
            self._append(session, write.entries)
        if self._holder(key.session_id, key.agent) == write.turn_id:
            del self._locks[(key.session_id, key.agent)]
        return result

    @staticmethod
    def _append(session: _Session, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        session.history.extend(entries)
        session.turns += 1
        session.updated_at = max([session.updated_at, *(e.at for e in entries)])
        for entry in entries:
            if entry.agent not in session.agents:
                session.agents.append(entry.agent)

    async def history(
        self, session_id: str, start: int, limit: int, max_bytes: int | None = None
    ) -> HistoryPage:
        session = self._sessions.get(session_id)
        lines = session.history if session else []
        taken: list[HistoryEntry] = []
        used = 0
        for entry in lines[start : start + limit]:
            size = entry_size(entry) if max_bytes is not None else 0
            if taken and max_bytes is not None and used + size > max_bytes:
                break
            taken.append(entry)
            used += size
        return HistoryPage(taken, len(lines))

    async def sessions(self, user_id: str, limit: int, after: SessionCursor | None = None) -> SessionsPage:
        found = [
            SessionInfo(sid, s.user_id, s.updated_at, s.turns, tuple(sorted(s.agents)))
            for sid, s in self._sessions.items()
            if s.user_id == user_id
        ]
        found = [info for info in found if listed_after(info, after)]
        found.sort(key=lambda s: (s.updated_at, s.session_id), reverse=True)
        return SessionsPage(found[:limit], len(found) > limit)

    async def session(self, session_id: str) -> SessionInfo | None:
        s = self._sessions.get(session_id)
        if s is None:
            return None
        return SessionInfo(session_id, s.user_id, s.updated_at, s.turns, tuple(sorted(s.agents)))

    async def store_id(self) -> str:
        return self._id

    async def delete_session(self, session_id: str) -> bool:
        existed = self._sessions.pop(session_id, None) is not None
        for key in [k for k in self._states if k.session_id == session_id]:
            del self._states[key]
            existed = True
        for lock in [k for k in self._locks if k[0] == session_id]:
            del self._locks[lock]
        return existed

    async def close(self) -> None:
        return None
