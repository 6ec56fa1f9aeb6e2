"""The `AgentService` implementation: routing, validation, streaming."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping

import grpc

from meshscope import paging
from meshscope.services.runtime.coalesce import coalesce
from meshscope.services.runtime.errors import (
    AgentNotFound,
    InvalidInput,
    MeshError,
    SessionNotFound,
    ShuttingDown,
)
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.messages import message_to_msg
from meshscope.services.runtime.state import SessionInfo
from meshscope.services.runtime.turn import Turn, TurnFailed, TurnRunner
from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from meshscope.wire import DEFAULT_MAX_MESSAGE_BYTES, MAX_KEY_LENGTH, key_problem, reason_metadata

ANONYMOUS_USER = "anonymous"


def check_key(value: str, field: str) -> str:
    """Validate a session or user id: it becomes part of storage keys."""
    problem = key_problem(value)
    if problem is not None:
        raise InvalidInput(field, problem)
    return value


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Routes each call to a hosted agent by name and streams its turn."""

    def __init__(
        self,
        agents: Mapping[str, HostedAgent],
        runner: TurnRunner,
        draining: Callable[[], bool],
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        coalesce_max_delay_s: float = 0.0,
    ) -> None:
        self._store = runner.store
        self._coalesce_max_delay_s = coalesce_max_delay_s
        """> 0: text deltas are merged while the caller is behind (`coalesce`); 0: one message per event."""
        self._max_message_bytes = max_message_bytes
        """The server's send limit: every session page is filled to fit it."""
        self._agents = dict(agents)
        self._hosted = ", ".join(sorted(self._agents))
        """For error messages: the agents this process hosts."""
        self._runner = runner
        self._draining = draining

    def _route(self, name: str, field: str = "agent") -> HostedAgent:
        if not name:
            if len(self._agents) == 1:
                return next(iter(self._agents.values()))
            raise InvalidInput(field, f"is required: this process hosts {self._hosted}")
        agent = self._agents.get(name)
        if agent is None:
            if len(name) > MAX_KEY_LENGTH:
                # The message below quotes the name: bounded, so it always fits gRPC's metadata limit.
                raise InvalidInput(field, f"must be at most {MAX_KEY_LENGTH} characters, got {len(name)}")
            raise AgentNotFound(f"no agent {name!r} here: this process hosts {self._hosted}")
        return agent

    def _turn(self, request: agent_pb2.InvokeRequest) -> Turn:
        agent = self._route(request.agent)
        if not request.HasField("input"):
            raise InvalidInput("input", "is required")
        return Turn(
            agent=agent,
            input=message_to_msg(request.input, "input"),
            session_id=check_key(request.session_id, "session_id"),
            user_id=check_key(request.user_id, "user_id") or ANONYMOUS_USER,
        )

    async def Invoke(  # noqa: N802 - gRPC method name
        self, request: agent_pb2.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.AgentEvent]:
        try:
            if self._draining():
                raise ShuttingDown("agent service is shutting down; retry on another replica")
            turn = self._turn(request)
        except MeshError as error:
            await _abort(context, error)
        try:
            # aclosing: a cancelled call closes the turn's generators now, with the
            # cancellation, instead of leaving them to the garbage collector.
            async with contextlib.aclosing(self._events(turn)) as events:
                async for event in events:
                    yield event
        except TurnFailed as failure:
            await _abort(context, failure.error)

    def _events(self, turn: Turn) -> AsyncGenerator[agent_pb2.AgentEvent, None]:
        """The turn's wire events as the call sends them: each alone, or coalesced when enabled."""
        events = self._runner.run(turn)
        if self._coalesce_max_delay_s > 0:
            return coalesce(events, self._coalesce_max_delay_s, max_bytes=self._max_message_bytes)
        return events

    async def GetCard(  # noqa: N802 - gRPC method name
        self, request: agent_pb2.GetCardRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentCard:
        try:
            return self._route(request.agent).card()
        except MeshError as error:
            await _abort(context, error)
            raise  # unreachable: abort raises

    async def ListSessions(  # noqa: N802 - gRPC method name
        self, request: common_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ListSessionsResponse:
        try:
            user = check_key(request.user_id, "user_id") or ANONYMOUS_USER
            with _paging_errors():
                size = paging.page_size(request.page_size)
                after = (
                    paging.cursor_of(
                        paging.decode_token(request.page_token, paging.SESSIONS, request.user_id)
                    )
                    if request.page_token
                    else None
                )
            page, store_id = await asyncio.gather(
                self._store.sessions(user, size, after), self._store.store_id()
            )
        except MeshError as error:
            await _abort(context, error)
            raise
        response = common_pb2.ListSessionsResponse(store_id=store_id)
        summaries = [session_summary(s) for s in page.sessions]
        # The longest token this page could end with: the cursor is one listed session's.
        longest = max((len(_sessions_token(request.user_id, s)) for s in page.sessions), default=0)
        budget = self._max_message_bytes - response.ByteSize() - paging.item_cost(longest)
        taken = max(1, paging.fill([s.ByteSize() for s in summaries], budget)) if summaries else 0
        response.sessions.extend(summaries[:taken])
        if taken and (page.more or taken < len(summaries)):
            last = page.sessions[taken - 1]
            response.next_page_token = _sessions_token(request.user_id, last)
        return response

    async def GetSession(  # noqa: N802 - gRPC method name
        self, request: common_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Session:
        try:
            session_id = _required_session(request.session_id)
            with _paging_errors():
                size = paging.page_size(request.page_size)
                start = (
                    paging.offset_of(paging.decode_token(request.page_token, paging.HISTORY, session_id))
                    if request.page_token
                    else 0
                )
            info, store_id = await asyncio.gather(self._store.session(session_id), self._store.store_id())
            if info is None:
                raise SessionNotFound(f"no session {session_id!r}")
            response = common_pb2.Session(
                summary=common_pb2.SessionSummary(
                    session_id=session_id, user_id=info.user_id, updated_at=info.updated_at,
                    turns=info.turns, agents=info.agents,
                ),
                store_id=store_id,
            )  # fmt: skip
            budget = self._page_budget(response, session_id)
            page = await self._store.history(session_id, start, size, max_bytes=budget)
        except MeshError as error:
            await _abort(context, error)
            raise
        lines = [
            common_pb2.HistoryLine(agent=x.agent, role=x.role, name=x.name, text=x.text, at=x.at)
            for x in page.entries
        ]
        taken = paging.fill([line.ByteSize() for line in lines], budget)
        if taken == 0 and lines:
            # One line alone is larger than a response may be: send it cut, flagged, rather
            # than fail every read of the session from here on.
            lines[0] = paging.fit_line(lines[0], budget)
            taken = 1
        response.history.extend(lines[:taken])
        if start + taken < page.total:
            response.next_page_token = paging.encode_token(paging.HISTORY, session_id, start + taken)
        return response

    def _page_budget(self, envelope: common_pb2.Session, session_id: str) -> int:
        """Bytes the lines of a page may take beside `envelope` and the longest next-page token."""
        token = paging.encode_token(paging.HISTORY, session_id, paging.MAX_OFFSET)
        return self._max_message_bytes - envelope.ByteSize() - paging.item_cost(len(token))

    async def DeleteSession(  # noqa: N802 - gRPC method name
        self, request: common_pb2.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.DeleteSessionResponse:
        try:
            deleted = await self._store.delete_session(_required_session(request.session_id))
        except MeshError as error:
            await _abort(context, error)
            raise
        return common_pb2.DeleteSessionResponse(deleted=deleted)


async def _abort(context: grpc.aio.ServicerContext, error: MeshError) -> None:
    """End the call with `error`'s status, its reason declared in the trailing metadata."""
    context.set_trailing_metadata(reason_metadata(error.reason))
    await context.abort(error.code, error.message)


@contextlib.contextmanager
def _paging_errors() -> Iterator[None]:
    """A bad page size or token is the caller's INVALID_ARGUMENT, naming the field."""
    try:
        yield
    except paging.PageTokenError as exc:
        raise InvalidInput(exc.field, exc.reason) from None


def _required_session(value: str) -> str:
    if not value:
        raise InvalidInput("session_id", "is required")
    return check_key(value, "session_id")


def _sessions_token(user_id: str, last: SessionInfo) -> str:
    """The token of the listing page after `last` (tokens are bound to the request's user_id as sent)."""
    return paging.encode_token(paging.SESSIONS, user_id, [last.updated_at, last.session_id])


def session_summary(info: SessionInfo) -> common_pb2.SessionSummary:
    return common_pb2.SessionSummary(
        session_id=info.session_id,
        user_id=info.user_id,
        updated_at=info.updated_at,
        turns=info.turns,
        agents=list(info.agents),
    )
