"""The `AgentService` implementation: routing, validation, streaming."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

import grpc

from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from meshscope.wire import ERROR_KIND_METADATA, MAX_KEY_LENGTH, key_problem
from services.runtime.errors import AgentNotFound, InvalidInput, MeshError, ShuttingDown
from services.runtime.hosted import HostedAgent
from services.runtime.messages import message_to_msg
from services.runtime.state import SessionInfo
from services.runtime.turn import Turn, TurnFailed, TurnRunner

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
        self, agents: Mapping[str, HostedAgent], runner: TurnRunner, draining: Callable[[], bool]
    ) -> None:
        self._store = runner.store
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
            async with contextlib.aclosing(self._runner.run(turn)) as events:
                async for event in events:
                    yield event
        except TurnFailed as failure:
            await _abort(context, failure.error)

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
            found = await self._store.sessions(user)
        except MeshError as error:
            await _abort(context, error)
            raise
        return common_pb2.ListSessionsResponse(sessions=[session_summary(s) for s in found])

    async def GetSession(  # noqa: N802 - gRPC method name
        self, request: common_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Session:
        try:
            session_id = _required_session(request.session_id)
            lines = await self._store.history(session_id)
        except MeshError as error:
            await _abort(context, error)
            raise
        if not lines:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
        agents = sorted({line.agent for line in lines})
        summary = common_pb2.SessionSummary(
            session_id=session_id, updated_at=max(line.at for line in lines), agents=agents,
            turns=sum(1 for line in lines if line.role == "user"),
        )  # fmt: skip
        return common_pb2.Session(
            summary=summary,
            history=[
                common_pb2.HistoryLine(agent=x.agent, role=x.role, name=x.name, text=x.text, at=x.at)
                for x in lines
            ],
        )

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
    context.set_trailing_metadata(((ERROR_KIND_METADATA, type(error).__name__),))
    await context.abort(error.code, error.message)


def _required_session(value: str) -> str:
    if not value:
        raise InvalidInput("session_id", "is required")
    return check_key(value, "session_id")


def session_summary(info: SessionInfo) -> common_pb2.SessionSummary:
    return common_pb2.SessionSummary(
        session_id=info.session_id,
        user_id=info.user_id,
        updated_at=info.updated_at,
        turns=info.turns,
        agents=list(info.agents),
    )
