"""Agent state storage: AgentScope `AgentState` JSON per (user, session, agent).

The interface is what the turn runner needs and no more: load with a
version, save only over the version that was loaded (optimistic
concurrency, so a stale writer gets `StateConflict` instead of clobbering
newer state). The in-memory backend is the default for a single process;
the Redis backend ([4/8]) implements the same protocol.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


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


class StateStore(Protocol):
    """Where agent state lives between turns."""

    async def load(self, key: StateKey) -> StoredState | None:
        """The latest saved state, or None for a new session."""
        ...

    async def save(self, key: StateKey, data: str, expected_version: int) -> int:
        """Save `data` over `expected_version` (0: must not exist yet); returns the new version."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class InMemoryStateStore:
    """State in this process's memory: the default for one process and for tests."""

    def __init__(self) -> None:
        self._states: dict[StateKey, StoredState] = {}
        self._lock = asyncio.Lock()

    async def load(self, key: StateKey) -> StoredState | None:
        return self._states.get(key)

    async def save(self, key: StateKey, data: str, expected_version: int) -> int:
        async with self._lock:
            current = self._states.get(key)
            actual = current.version if current else 0
            if actual != expected_version:
                raise StateConflict(key, expected_version, actual)
            self._states[key] = StoredState(data=data, version=actual + 1)
            return actual + 1

    async def close(self) -> None:
        self._states.clear()
