"""One agent turn: load state, run the agent, stream its events, save state.

The save sits in `finally` and is shielded, so the state is written after
success, failure and cancellation alike; nothing is half-written because a
save is a single versioned write of the whole state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from agentscope.event import ModelCallEndEvent
from agentscope.message import Msg
from agentscope.state import AgentState
from pydantic import ValidationError

from meshscope.services.runtime.definition import StreamingAgent
from meshscope.services.runtime.errors import CorruptState, MeshError, SessionBusy, with_message
from meshscope.services.runtime.events import EventEncoder
from meshscope.services.runtime.failures import classify
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.leases import LeaseKeeper
from meshscope.services.runtime.state import (
    HistoryEntry,
    SessionStore,
    StateConflict,
    StateKey,
    StoredState,
    TurnWrite,
)
from meshscope.telemetry.instruments import LOCK_WAIT
from meshscope.v1 import agent_pb2

log = logging.getLogger("meshscope.turn")
T = TypeVar("T")

FINISH_WAIT_S = 10.0
"""How long `TurnRunner.close` waits for saves still running (a store call is bounded by its own timeouts)."""


@dataclass
class TurnStats:
    """Counters a server exposes about its turns (tests and load reporting read them)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    in_flight: int = 0


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


def _error_of(exc: Exception, agent: str) -> MeshError:
    """What the caller is told about a turn that raised `exc`: a `MeshError` as it is, anything
    else classified (a provider outage in one logged line; only an unexpected exception earns
    its traceback in the log)."""
    failure = classify(exc, agent)
    if not isinstance(exc, MeshError):
        traceback = None if failure.expected else exc
        log.warning("turn of %r failed: %s", agent, failure.error.message, exc_info=traceback)
    return failure.error


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
    """Runs turns against a session store, keeping `TurnStats`.

    Per turn with a session: take the (session, agent) lock (waiting up to
    `lock_wait_s`), load the state, run, then in `finally` save the state,
    append the transcript and release the lock in one store call: three
    store round trips a turn. A `LeaseKeeper` renews the
    lock of a turn that runs longer than a third of its TTL.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        lock_ttl_s: float = 30.0,
        lock_wait_s: float = 0.0,
        max_event_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.lock_ttl_s = lock_ttl_s
        self.lock_wait_s = lock_wait_s
        self.max_event_bytes = max_event_bytes
        """Events above this size (the server's send limit) end the turn with an error event."""
        self.stats = TurnStats()
        self._leases = LeaseKeeper(store, lock_ttl_s)
        self._running: dict[asyncio.Task[Any], object | None] = {}
        """Each running turn's task, with the agent stream it iterates once it has one."""
        self._cut_off: dict[asyncio.Task[Any], MeshError] = {}
        """The turns `interrupt` ended, with its error (others cancelled are their callers' doing)."""
        self._finishing: set[asyncio.Future[Any]] = set()
        self.idle = asyncio.Event()
        """Set while no turn is in flight."""
        self.idle.set()

    async def _load(self, key: StateKey | None) -> tuple[AgentState, StoredState | None]:
        if key is None:
            return AgentState(session_id=uuid.uuid4().hex), None
        stored = await self.store.load(key)
        if stored is None:
            return AgentState(session_id=key.session_id), None
        try:
            return AgentState.model_validate_json(stored.data), stored
        except ValidationError as exc:
            raise CorruptState(
                f"stored state of session {key.session_id!r} for agent {key.agent!r} is corrupt: "
                f"{exc.error_count()} validation error(s), first: {exc.errors()[0]['msg']}"
            ) from exc

    async def _lock(self, key: StateKey) -> str:
        # The owner token exists before the request is sent: whatever happens to the
        # await that takes the lock, the lock can be released by it (see `_acquire`).
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.02
        while not await self._acquire(key, owner):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SessionBusy(
                    f"session {key.session_id!r} is busy: agent {key.agent!r} is already running a turn in it"
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.5)
        return owner

    async def _acquire(self, key: StateKey, owner: str) -> bool:
        """One attempt at the lock, whose outcome is never lost.

        The request runs to its end even when this await does not (the caller cancelled,
        the connection died with the reply): the store may have applied it all the same,
        and a lock nobody releases keeps the session busy for a whole TTL. So when the
        await fails, the lock is released by owner token (never someone else's) once the
        attempt has ended, unless the store said no.
        """
        attempt = self._owned(self.store.acquire(key.session_id, key.agent, owner, self.lock_ttl_s))
        try:
            return await asyncio.shield(attempt)
        except BaseException:
            attempt.add_done_callback(functools.partial(self._release_unless_refused, key, owner))
            raise

    def _release_unless_refused(self, key: StateKey, owner: str, attempt: asyncio.Future[bool]) -> None:
        if not attempt.cancelled() and attempt.exception() is None and not attempt.result():
            return  # the store refused the lock: there is nothing to release
        self._owned(self._unlock(key, owner))

    async def _finish(
        self,
        turn: Turn,
        key: StateKey,
        owner: str,
        state: AgentState | None,
        loaded: StoredState | None,
        encoder: EventEncoder,
    ) -> MeshError | None:
        """Write the turn in one store call: its state, its transcript lines and the release of
        its lock (keyed by the turn, so a retry inside the store writes nothing twice).
        Returns the store's error, if any."""
        self._leases.drop(owner)
        now = time.time()
        entries = [
            HistoryEntry(turn.agent.name, "user", turn.input.name, turn.input.get_text_content() or "", now)
        ]
        reply = encoder.assembler.root_reply
        if reply is not None:
            entries.append(
                HistoryEntry(turn.agent.name, "assistant", reply.name, reply.get_text_content() or "", now)
            )
        write = TurnWrite(
            key,
            owner,
            None if state is None else state.model_dump_json(),
            loaded.version if loaded else 0,
            tuple(entries),
        )
        try:
            written = await self.store.finish_turn(write)
        except Exception as exc:
            # Whether the write (and with it the release) happened is unknown: try the
            # release alone, without holding up the turn (the lock's TTL is the last resort).
            self._owned(self._unlock(key, owner))
            if isinstance(exc, MeshError):  # stores report their own trouble as StoreUnavailable/StoreBusy
                return exc
            log.exception("session %r not saved", key.session_id)  # a bug, not an outage
            return MeshError(f"session {key.session_id!r} not saved: {type(exc).__name__}: {exc}")
        if written.conflict is not None:
            log.warning("state not saved: %s", StateConflict(key, write.expected_version, written.conflict))
        return None

    def _track(self, delta: int) -> None:
        self.stats.in_flight += delta
        if self.stats.in_flight:
            self.idle.clear()
        else:
            self.idle.set()

    async def run(self, turn: Turn) -> AsyncGenerator[agent_pb2.AgentEvent, None]:
        """Stream the turn's wire events; raises `TurnFailed` on failure.

        The steps: `_session` binds the agent to its session (lock, load) and, on the way out
        whatever happened, saves and unlocks; the agent's events are encoded as they come, the
        turn stopping at its next event once `interrupt` cut it off; a failure becomes the
        error the caller is told (`_error_of`), sent as the stream's last event when the
        stream had begun (`_failed`).
        """
        encoder = EventEncoder(turn.agent.name, self.max_event_bytes)
        task = self._begin()
        try:
            async with self._session(turn, encoder) as agent:
                async with _closing(agent.reply_stream(turn.input)) as stream:
                    self._running[task] = stream
                    async for item in stream:
                        if isinstance(item, Msg):
                            continue
                        if isinstance(item, ModelCallEndEvent):
                            turn.agent.count_tokens(item)
                        yield encoder.encode(item)
                        if task in self._cut_off:
                            raise self._cut_off_error(task)
                # An agent may swallow the cancellation (AgentScope ends the reply as
                # interrupted): a cut-off turn still fails as cut off, not as completed.
                if task in self._cut_off:
                    raise self._cut_off_error(task)
        except asyncio.CancelledError:
            if task not in self._cut_off:
                self.stats.cancelled += 1
                log.info("turn of %r in session %r cancelled by the caller", turn.agent.name, turn.session_id)
                raise
            # Cut off by `interrupt` (the server is stopping), not by the caller: the
            # call is still open, so it gets an error event and a status saying why.
            failed = self._failed(self._cut_off_error(task), encoder)
            if failed.error_event_sent:
                yield encoder.error(failed.error)
            raise failed from None
        except GeneratorExit:
            self.stats.cancelled += 1
            raise
        except Exception as exc:
            failed = self._failed(_error_of(exc, turn.agent.name), encoder)
            if failed.error_event_sent:
                yield encoder.error(failed.error)
            raise failed from exc
        else:
            self.stats.completed += 1
        finally:
            self._end(task)

    def _begin(self) -> asyncio.Task[Any]:
        """Count a turn as started and in flight, in the current task (which `interrupt` may cancel)."""
        task = asyncio.current_task()
        assert task is not None, "a turn runs in a task"
        self.stats.started += 1
        self._track(+1)
        self._running[task] = None
        return task

    def _end(self, task: asyncio.Task[Any]) -> None:
        self._running.pop(task, None)
        self._track(-1)

    def _failed(self, error: MeshError, encoder: EventEncoder) -> TurnFailed:
        """The turn failed with `error`: counted, and whether its stream carries the error event
        (only a stream that has begun does: one that never began ends with the status alone)."""
        self.stats.failed += 1
        return TurnFailed(error, error_event_sent=encoder.sent > 0)

    @contextlib.asynccontextmanager
    async def _session(self, turn: Turn, encoder: EventEncoder) -> AsyncIterator[StreamingAgent]:
        """The turn's agent, bound to its session's state.

        With a session: the (session, agent) lock is taken and the state loaded first; on the way
        out, whatever happened, one shielded store call saves the state, appends the transcript
        and releases the lock (so a cancelled call still leaves its state written and its session
        free). Without one, the agent starts from a fresh state and nothing is kept. The agent goes
        back to its pool either way, reusable only after a complete, saved turn. Raises the store's
        error (`with_message`) when a complete reply's turn was not saved.
        """
        key = StateKey(turn.user_id, turn.session_id, turn.agent.name) if turn.session_id else None
        owner = None if key is None else await self._locked(key)
        try:
            state, loaded = await self._load(key)
            agent = turn.agent.acquire(state)
        except BaseException:
            if key is not None and owner is not None:  # the turn never ran (e.g. corrupt state)
                await asyncio.shield(self._owned(self._unlock(key, owner)))
            raise
        finished = False
        persist_error: MeshError | None = None
        try:
            yield agent
            finished = True
        finally:
            if key is not None and owner is not None:
                # Released by `finishing`, even if this call is cancelled meanwhile.
                finishing = self._finish(turn, key, owner, HostedAgent.state_of(agent), loaded, encoder)
                persist_error = await asyncio.shield(self._owned(finishing))
                if persist_error is not None and not finished:
                    log.error("session %r not saved: %s", key.session_id, persist_error.message)
            turn.agent.release(agent, reusable=finished and persist_error is None)
        if persist_error is not None:
            # The reply reached the caller whole: say so, and that the turn's write is what failed.
            raise with_message(
                persist_error,
                f"session {turn.session_id!r}: the reply was complete, but the session store did not "
                f"confirm the turn was saved (state, transcript): {persist_error.message}",
            )

    async def _locked(self, key: StateKey) -> str:
        """Take the session's lock and keep it renewed; the owner token."""
        began = time.monotonic()
        try:
            owner = await self._lock(key)
        except SessionBusy:
            LOCK_WAIT.record(time.monotonic() - began, {"agent": key.agent, "outcome": "busy"})
            raise
        LOCK_WAIT.record(time.monotonic() - began, {"agent": key.agent, "outcome": "taken"})
        self._leases.hold(key, owner)
        return owner

    def interrupt(self, error: MeshError) -> int:
        """End every running turn with `error` (an error event, then its status); how many there were.

        For the end of a shutdown's grace period: gRPC would cancel the calls
        and their callers would see the stream stop with no reason given.
        """
        self._cut_off = dict.fromkeys(self._running, error)
        for task, stream in self._running.items():
            # A turn waiting on its agent is cancelled there (and turns that into `error`).
            # One whose stream is idle is at a `yield`, inside gRPC's write: cancelling it
            # there would end the call unexplained, so it stops at its next event instead.
            if getattr(stream, "ag_running", True):
                task.cancel()
        return len(self._running)

    def _owned(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """`work` as a task that runs to its end whatever happens to the turn that started it
        (await it through `asyncio.shield`); `close` waits for it, so the store outlives every
        lock attempt, save and unlock a turn started."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return task

    def _cut_off_error(self, task: asyncio.Task[Any]) -> MeshError:
        """The interrupt's error, with the cancellation `interrupt` may have sent taken back."""
        if task.cancelling():
            task.uncancel()
        return self._cut_off[task]

    async def close(self) -> None:
        """Wait (boundedly) for turns still saving, then stop renewing locks.

        The server calls this after its turns ended and before it closes the store:
        a turn cancelled while saving left its shielded save running.
        """
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=FINISH_WAIT_S)
        await self._leases.close()

    async def _unlock(self, key: StateKey, owner: str) -> None:
        self._leases.drop(owner)
        try:
            await self.store.release(key.session_id, key.agent, owner)
        except Exception as exc:  # the lock expires by its TTL anyway
            log.warning("could not release the lock of session %r: %s", key.session_id, exc)
