"""One agent turn: load state, run the agent, stream its events, save state.

The save sits in `finally` and is shielded, so the state is written after
success, failure and cancellation alike; nothing is half-written because a
save is a single versioned write of the whole state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from agentscope.message import Msg
from agentscope.state import AgentState
from pydantic import ValidationError

from meshscope.v1 import agent_pb2
from services.runtime.errors import CorruptState, MeshError, ModelFailure, StoreUnavailable
from services.runtime.events import EventEncoder
from services.runtime.hosted import HostedAgent
from services.runtime.state import StateConflict, StateKey, StateStore, StoredState

log = logging.getLogger("meshscope.turn")


@dataclass
class TurnStats:
    """Counters a server exposes about its turns (tests and load reporting read them)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    in_flight: int = 0
    per_agent_in_flight: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Turn:
    """A validated request for one turn."""

    agent: HostedAgent
    input: Msg
    session_id: str
    user_id: str


class TurnFailed(Exception):
    """A turn failed; `error_event_sent` tells whether the stream already carried it."""

    def __init__(self, error: MeshError, *, error_event_sent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.error_event_sent = error_event_sent


def _classify(exc: BaseException, agent: str) -> MeshError:
    if isinstance(exc, MeshError):
        return exc
    if isinstance(exc, TimeoutError):
        error = ModelFailure(f"agent {agent!r}: model call timed out")
        error.code = grpc.StatusCode.DEADLINE_EXCEEDED
        return error
    if isinstance(exc, ConnectionError):
        error = ModelFailure(f"agent {agent!r}: model unreachable: {exc}")
        error.code = grpc.StatusCode.UNAVAILABLE
        error.retryable = True
        return error
    return ModelFailure(f"agent {agent!r} failed: {type(exc).__name__}: {exc}")


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[Any]) -> AsyncIterator[AsyncIterator[Any]]:
    """Close an agent's event stream on exit, if it can be closed (async generators can)."""
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class TurnRunner:
    """Runs turns against a state store, keeping `TurnStats`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.stats = TurnStats()

    async def _load(self, key: StateKey | None) -> tuple[AgentState, StoredState | None]:
        if key is None:
            return AgentState(session_id=uuid.uuid4().hex), None
        try:
            stored = await self.store.load(key)
        except MeshError:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"state store unreachable: {exc}") from exc
        if stored is None:
            return AgentState(session_id=key.session_id), None
        try:
            return AgentState.model_validate_json(stored.data), stored
        except ValidationError as exc:
            raise CorruptState(
                f"stored state of session {key.session_id!r} for agent {key.agent!r} is corrupt: "
                f"{exc.error_count()} validation error(s), first: {exc.errors()[0]['msg']}"
            ) from exc

    async def _save(self, key: StateKey, state: AgentState, loaded: StoredState | None) -> None:
        data = state.model_dump_json()
        try:
            await self.store.save(key, data, loaded.version if loaded else 0)
        except StateConflict as exc:
            log.warning("state not saved: %s", exc)
        except Exception as exc:
            log.error("state of session %r for agent %r not saved: %s", key.session_id, key.agent, exc)

    def _track(self, agent: str, delta: int) -> None:
        self.stats.in_flight += delta
        counts = self.stats.per_agent_in_flight
        counts[agent] = counts.get(agent, 0) + delta

    async def run(self, turn: Turn) -> AsyncGenerator[agent_pb2.AgentEvent, None]:
        """Stream the turn's wire events; raises `TurnFailed` on failure."""
        name = turn.agent.name
        key = StateKey(turn.user_id, turn.session_id, name) if turn.session_id else None
        encoder = EventEncoder(name)
        self.stats.started += 1
        self._track(name, +1)
        try:
            state, loaded = await self._load(key)
            agent = turn.agent.acquire(state)
            finished = False
            try:
                async with _closing(agent.reply_stream(turn.input)) as stream:
                    async for item in stream:
                        if isinstance(item, Msg):
                            continue
                        yield encoder.encode(item)
                finished = True
            finally:
                final_state = HostedAgent.state_of(agent)
                if key is not None and final_state is not None:
                    await asyncio.shield(self._save(key, final_state, loaded))
                turn.agent.release(agent, reusable=finished)
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            log.info("turn of %r in session %r cancelled by the caller", name, turn.session_id)
            raise
        except GeneratorExit:
            self.stats.cancelled += 1
            raise
        except Exception as exc:
            self.stats.failed += 1
            error = _classify(exc, name)
            if not isinstance(exc, MeshError):
                log.warning("turn of %r failed: %s", name, error.message, exc_info=exc)
            sent = encoder.sent > 0
            if sent:
                yield encoder.error(error.code.name, error.message, retryable=error.retryable)
            raise TurnFailed(error, error_event_sent=sent) from exc
        else:
            self.stats.completed += 1
        finally:
            self._track(name, -1)
