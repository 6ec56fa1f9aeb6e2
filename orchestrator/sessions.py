"""The session API of the orchestrator: asked of every agent replica, merged.

Sessions live agent-side (each agent process's session store: Redis shared by
all, or memory per process). The orchestrator asks each distinct replica
address once and merges the answers, so the API is right for both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from meshscope.v1 import common_pb2
from orchestrator.pool import Endpoint, EndpointPool

T = TypeVar("T")
CALL_TIMEOUT_S = 5.0


class SessionsUnavailable(Exception):
    """No replica could answer."""


def _distinct_endpoints(pool: EndpointPool) -> list[Endpoint]:
    seen: dict[str, Endpoint] = {}
    for agent in pool.agents():
        for endpoint in pool.endpoints(agent):
            seen.setdefault(endpoint.instance.address, endpoint)
    return list(seen.values())


async def _ask_all(pool: EndpointPool, call: Callable[[Any], Awaitable[T]]) -> list[T]:
    """`call(stub)` on every distinct replica; the answers of those that answered."""
    endpoints = _distinct_endpoints(pool)
    if not endpoints:
        raise SessionsUnavailable("no agent replica is available to ask about sessions")
    results = await asyncio.gather(*(call(e.stub) for e in endpoints), return_exceptions=True)
    answers = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    not_found = [e for e in errors if e.code() == grpc.StatusCode.NOT_FOUND]
    if not answers and len(not_found) != len(results):
        first = next((e for e in errors if e.code() != grpc.StatusCode.NOT_FOUND), None)
        detail = first.details() if first is not None else "no replica answered"
        raise SessionsUnavailable(f"no agent replica could answer: {detail}")
    return answers


async def list_sessions(pool: EndpointPool, user_id: str) -> common_pb2.ListSessionsResponse:
    answers = await _ask_all(
        pool,
        lambda stub: stub.ListSessions(
            common_pb2.ListSessionsRequest(user_id=user_id), timeout=CALL_TIMEOUT_S
        ),
    )
    merged: dict[str, common_pb2.SessionSummary] = {}
    for answer in answers:
        for summary in answer.sessions:
            known = merged.get(summary.session_id)
            if known is None:
                merged[summary.session_id] = summary
                continue
            if summary.updated_at > known.updated_at:
                known.updated_at = summary.updated_at
            if summary != known:  # another process's store: combine its agents
                known.agents[:] = sorted(set(known.agents) | set(summary.agents))
                known.turns = max(known.turns, summary.turns)
    ordered = sorted(merged.values(), key=lambda s: s.updated_at, reverse=True)
    return common_pb2.ListSessionsResponse(sessions=ordered)


async def get_session(pool: EndpointPool, session_id: str) -> common_pb2.Session | None:
    answers = await _ask_all(
        pool,
        lambda stub: stub.GetSession(
            common_pb2.GetSessionRequest(session_id=session_id), timeout=CALL_TIMEOUT_S
        ),
    )
    if not answers:
        return None
    lines: dict[tuple[str, str, str, float], common_pb2.HistoryLine] = {}
    for answer in answers:
        for line in answer.history:
            lines.setdefault((line.agent, line.role, line.text, line.at), line)
    history = sorted(lines.values(), key=lambda line: line.at)
    agents = sorted({line.agent for line in history})
    summary = common_pb2.SessionSummary(
        session_id=session_id,
        updated_at=max(line.at for line in history),
        turns=sum(1 for line in history if line.role == "user"),
        agents=agents,
    )
    return common_pb2.Session(summary=summary, history=history)


async def delete_session(pool: EndpointPool, session_id: str) -> bool:
    answers = await _ask_all(
        pool,
        lambda stub: stub.DeleteSession(
            common_pb2.DeleteSessionRequest(session_id=session_id), timeout=CALL_TIMEOUT_S
        ),
    )
    return any(answer.deleted for answer in answers)
