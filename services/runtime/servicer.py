"""The `AgentService` implementation: routing, validation, streaming."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

import grpc

from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from services.runtime.errors import AgentNotFound, InvalidInput, MeshError, ShuttingDown
from services.runtime.hosted import HostedAgent
from services.runtime.messages import message_to_msg
from services.runtime.turn import Turn, TurnFailed, TurnRunner

MAX_KEY_LENGTH = 256
ANONYMOUS_USER = "anonymous"


def check_key(value: str, field: str) -> str:
    """Validate a session or user id: it becomes part of storage keys."""
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_KEY_LENGTH} characters, got {len(value)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(field, "must not contain control characters")
    if value != value.strip():
        raise InvalidInput(field, "must not start or end with white space")
    return value


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Routes each call to a hosted agent by name and streams its turn."""

    def __init__(
        self, agents: Mapping[str, HostedAgent], runner: TurnRunner, draining: Callable[[], bool]
    ) -> None:
        self._agents = dict(agents)
        self._runner = runner
        self._draining = draining

    def _route(self, name: str, field: str = "agent") -> HostedAgent:
        hosted = ", ".join(sorted(self._agents))
        if not name:
            if len(self._agents) == 1:
                return next(iter(self._agents.values()))
            raise InvalidInput(field, f"is required: this process hosts {hosted}")
        agent = self._agents.get(name)
        if agent is None:
            raise AgentNotFound(f"no agent {name!r} here: this process hosts {hosted}")
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
            await context.abort(error.code, error.message)
        try:
            # aclosing: a cancelled call closes the turn's generators now, with the
            # cancellation, instead of leaving them to the garbage collector.
            async with contextlib.aclosing(self._runner.run(turn)) as events:
                async for event in events:
                    yield event
        except TurnFailed as failure:
            await context.abort(failure.error.code, failure.error.message)

    async def GetCard(  # noqa: N802 - gRPC method name
        self, request: agent_pb2.GetCardRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentCard:
        try:
            return self._route(request.agent).card()
        except MeshError as error:
            await context.abort(error.code, error.message)
            raise  # unreachable: abort raises
