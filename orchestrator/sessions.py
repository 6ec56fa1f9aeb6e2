"""The session API of the orchestrator: asked of the agent replicas, merged, paged.

Sessions live agent-side, in each agent process's session store: one Redis shared by
every replica, or one memory store per process. Every answer names the store that
gave it (`store_id`), so the orchestrator reads one answer per store, however many
replicas share it, and merges the stores' answers (docs/architecture.md, "Sessions"):

- GetSession: the stores' transcripts are merged by time, a page at a time. The page
  token holds one offset per store (and which replica address reads which store), so
  each store is read from where the previous page stopped. The merge stops where a
  store's page ends but the store has more: its next line may be older than the others'.
- ListSessions: every store lists the sessions after one keyset cursor (updated_at,
  session_id) with the same token format the agents use; the pages are merged newest first.

Every page is filled to fit this process's own send limit: what the agents sent
(each under theirs) is re-measured here, never passed on blindly.

A replica that did not answer (unreachable, draining, timed out) is skipped while
another answers; a replica that answered with an error (RESOURCE_EXHAUSTED, DATA_LOSS,
a store's UNAVAILABLE...) fails the call with that status, message and reason.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from meshscope import paging
from meshscope.orchestrator.calls import reason_of, relayed_reason, replica_fault
from meshscope.orchestrator.failures import Failed
from meshscope.orchestrator.pool import Endpoint, EndpointPool
from meshscope.v1 import common_pb2

T = TypeVar("T")
CALL_TIMEOUT_S = 5.0
NO_ANSWER = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
"""Statuses that mean the replica did not answer (besides its own UNAVAILABLE)."""
NO_REPLICA = common_pb2.ERROR_REASON_AGENT_UNAVAILABLE
"""The reason of a session call no replica answered."""


class SessionsFailed(Failed):
    """The session call failed with a gRPC status and declared reason; the message says why."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one replica answered."""

    address: str
    response: Any


def _distinct_endpoints(pool: EndpointPool) -> dict[str, Endpoint]:
    seen: dict[str, Endpoint] = {}
    for agent in pool.agents():
        for endpoint in pool.endpoints(agent):
            seen.setdefault(endpoint.instance.address, endpoint)
    return seen


def _answered(error: grpc.aio.AioRpcError) -> bool:
    """Whether this error is the replica's answer, rather than the replica not answering."""
    code = error.code()
    if code in NO_ANSWER:
        return False
    return not (code == grpc.StatusCode.UNAVAILABLE and replica_fault(error))


async def _ask(
    endpoints: Sequence[Endpoint], call: Callable[[Endpoint], Awaitable[T]]
) -> tuple[list[tuple[Endpoint, T]], list[grpc.aio.AioRpcError]]:
    """`call(endpoint)` on each endpoint at once: the answers, and the replicas' error answers.

    Raises `SessionsFailed` with the replica's own status when a replica answered with an
    error other than NOT_FOUND.
    """
    results = await asyncio.gather(*(call(e) for e in endpoints), return_exceptions=True)
    answers: list[tuple[Endpoint, T]] = []
    silent: list[grpc.aio.AioRpcError] = []
    for endpoint, result in zip(endpoints, results, strict=True):
        if isinstance(result, grpc.aio.AioRpcError):
            if result.code() == grpc.StatusCode.NOT_FOUND:
                continue
            if _answered(result):
                # An answer, not an outage: its status, message and reason are the caller's.
                code = result.code()
                raise SessionsFailed(code, str(result.details()), relayed_reason(code, reason_of(result)))
            silent.append(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            answers.append((endpoint, result))
    return answers, silent


def _nobody(silent: list[grpc.aio.AioRpcError]) -> SessionsFailed:
    detail = silent[0].details() if silent else "no replica answered"
    return SessionsFailed(grpc.StatusCode.UNAVAILABLE, f"no agent replica could answer: {detail}", NO_REPLICA)


def _by_store(answers: list[tuple[Endpoint, T]]) -> dict[str, tuple[Endpoint, T]]:
    """One answer per store (replicas sharing a store answer alike)."""
    found: dict[str, tuple[Endpoint, T]] = {}
    for endpoint, response in answers:
        found.setdefault(getattr(response, "store_id", "") or endpoint.instance.address, (endpoint, response))
    return found


# -- ListSessions ---------------------------------------------------------------------------


async def list_sessions(
    pool: EndpointPool, request: common_pb2.ListSessionsRequest, max_message_bytes: int
) -> common_pb2.ListSessionsResponse:
    """One page of the user's sessions over every store (`paging.PageTokenError` for a bad token)."""
    size = paging.page_size(request.page_size)
    if request.page_token:  # checked here too: a bad token is the caller's, whoever reads it
        paging.cursor_of(paging.decode_token(request.page_token, paging.SESSIONS, request.user_id))
    endpoints = list(_distinct_endpoints(pool).values())
    if not endpoints:
        raise SessionsFailed(
            grpc.StatusCode.UNAVAILABLE, "no agent replica is available to ask about sessions", NO_REPLICA
        )
    asked = common_pb2.ListSessionsRequest(
        user_id=request.user_id, page_size=size, page_token=request.page_token
    )
    answers, silent = await _ask(endpoints, lambda e: e.stub.ListSessions(asked, timeout=CALL_TIMEOUT_S))
    if not answers:
        raise _nobody(silent)
    pages = [response for _, response in _by_store(answers).values()]
    heads = [0] * len(pages)
    merged: dict[str, common_pb2.SessionSummary] = {}
    order: list[str] = []
    while len(order) < size:
        live = [i for i, page in enumerate(pages) if heads[i] < len(page.sessions)]
        if not live or any(heads[i] == len(p.sessions) and p.next_page_token for i, p in enumerate(pages)):
            break  # a store's page ended but it has more: its next session may be newer
        i = max(live, key=lambda i: _rank(pages[i].sessions[heads[i]]))
        summary = pages[i].sessions[heads[i]]
        heads[i] += 1
        known = merged.get(summary.session_id)
        if known is None:
            merged[summary.session_id] = summary
            order.append(summary.session_id)
        else:  # the same session in another store (memory stores, one per process): combine
            known.agents[:] = sorted(set(known.agents) | set(summary.agents))
            known.turns += summary.turns
    response = common_pb2.ListSessionsResponse()
    listed = [merged[sid] for sid in order]
    tokens = [_sessions_token(request.user_id, s) for s in listed]
    budget = max_message_bytes - paging.item_cost(max((len(t) for t in tokens), default=0))
    taken = paging.fill([s.ByteSize() for s in listed], budget)
    response.sessions.extend(listed[:taken])
    more = taken < len(listed) or any(
        heads[i] < len(p.sessions) or p.next_page_token for i, p in enumerate(pages)
    )
    if more and taken:
        response.next_page_token = tokens[taken - 1]
    return response


def _rank(summary: common_pb2.SessionSummary) -> tuple[float, str]:
    return summary.updated_at, summary.session_id


def _sessions_token(user_id: str, summary: common_pb2.SessionSummary) -> str:
    return paging.encode_token(paging.SESSIONS, user_id, [summary.updated_at, summary.session_id])


# -- GetSession -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Position:
    """Where the merged transcript stands: each store's offset, and which address reads which store."""

    offsets: dict[str, int]
    stores: dict[str, str]
    """address -> store id, learned from earlier pages' answers."""

    def token(self, session_id: str) -> str:
        return paging.encode_token(paging.MESH_HISTORY, session_id, {"o": self.offsets, "a": self.stores})

    @classmethod
    def read(cls, token: str, session_id: str) -> _Position:
        if not token:
            return cls({}, {})
        raw = paging.decode_token(token, paging.MESH_HISTORY, session_id)
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("o"), dict)
            or not isinstance(raw.get("a"), dict)
        ):
            raise paging.PageTokenError("page_token", "is not a next_page_token this service issued")
        offsets = {str(k): paging.offset_of(v) for k, v in raw["o"].items()}
        stores = {str(k): str(v) for k, v in raw["a"].items() if isinstance(v, str)}
        return cls(offsets, stores)


async def get_session(
    pool: EndpointPool, request: common_pb2.GetSessionRequest, max_message_bytes: int
) -> common_pb2.Session | None:
    """One page of the session's merged transcript; None when no store has the session."""
    session_id = request.session_id
    size = paging.page_size(request.page_size)
    position = _Position.read(request.page_token, session_id)
    endpoints = _distinct_endpoints(pool)
    if not endpoints:
        raise SessionsFailed(
            grpc.StatusCode.UNAVAILABLE, "no agent replica is available to ask about sessions", NO_REPLICA
        )

    def ask(endpoint: Endpoint, store: str | None) -> Awaitable[Any]:
        offset = position.offsets.get(store, 0) if store else 0
        token = paging.encode_token(paging.HISTORY, session_id, offset) if offset else ""
        asked = common_pb2.GetSessionRequest(session_id=session_id, page_size=size, page_token=token)
        call: Awaitable[Any] = endpoint.stub.GetSession(asked, timeout=CALL_TIMEOUT_S)
        return call

    # One replica per store already known (others of the same store are fallbacks), and
    # every replica whose store is not known yet (the first page asks them all).
    known: dict[str, list[Endpoint]] = {}
    unknown: list[Endpoint] = []
    for address, endpoint in endpoints.items():
        store = position.stores.get(address)
        if store is None:
            unknown.append(endpoint)
        else:
            known.setdefault(store, []).append(endpoint)
    found: dict[str, tuple[Endpoint, common_pb2.Session, int]] = {}
    silent: list[grpc.aio.AioRpcError] = []
    rounds = max((len(group) for group in known.values()), default=1)
    for attempt in range(rounds):
        batch = [
            group[attempt] for store, group in known.items() if store not in found and attempt < len(group)
        ]
        if attempt == 0:
            batch += unknown
        if not batch:
            break
        answers, quiet = await _ask(batch, lambda e: ask(e, position.stores.get(e.instance.address)))
        silent += quiet
        for endpoint, answer in answers:
            store = answer.store_id or endpoint.instance.address
            if store in found:
                continue
            assumed = position.stores.get(endpoint.instance.address)
            if position.offsets.get(store, 0) != (position.offsets.get(assumed, 0) if assumed else 0):
                # Not the store this address was assumed to read (a replica restarted in
                # place, or a new address of a store already paged): ask again from its offset.
                again, quiet = await _ask([endpoint], functools.partial(ask, store=store))
                silent += quiet
                if not again:
                    continue
                answer = again[0][1]
            found[store] = (endpoint, answer, position.offsets.get(store, 0))
    if not found:
        if silent:
            raise _nobody(silent)
        return None
    return _merge(session_id, size, position, found, endpoints, max_message_bytes)


def _merge(
    session_id: str,
    size: int,
    position: _Position,
    found: dict[str, tuple[Endpoint, common_pb2.Session, int]],
    endpoints: dict[str, Endpoint],
    max_message_bytes: int,
) -> common_pb2.Session:
    stores = sorted(found)
    pages = {s: found[s][1] for s in stores}
    summary = common_pb2.SessionSummary(session_id=session_id)
    for page in pages.values():  # each store counts its own turns: they add up
        summary.user_id = summary.user_id or page.summary.user_id
        summary.updated_at = max(summary.updated_at, page.summary.updated_at)
        summary.turns += page.summary.turns
        summary.agents[:] = sorted(set(summary.agents) | set(page.summary.agents))
    addresses = dict(position.stores)
    for store, (endpoint, _, _) in found.items():
        addresses[endpoint.instance.address] = store
    addresses = {a: s for a, s in addresses.items() if a in endpoints}
    response = common_pb2.Session(summary=summary)
    longest = _Position({s: paging.MAX_OFFSET for s in {*position.offsets, *stores}}, addresses)
    budget = max_message_bytes - response.ByteSize() - paging.item_cost(len(longest.token(session_id)))
    heads = dict.fromkeys(stores, 0)
    used = 0
    while len(response.history) < size:
        live = [s for s in stores if heads[s] < len(pages[s].history)]
        blocked = any(heads[s] == len(pages[s].history) and pages[s].next_page_token for s in stores)
        if not live or blocked:
            break  # a store's page ended but it has more: its next line may come first
        store = min(live, key=lambda s: (pages[s].history[heads[s]].at, s))
        line = pages[store].history[heads[store]]
        cost = paging.item_cost(line.ByteSize())
        if used + cost > budget:
            if response.history:
                break
            line = paging.fit_line(line, budget)  # alone too large for this hop: cut, flagged
            cost = paging.item_cost(line.ByteSize())
        response.history.append(line)
        used += cost
        heads[store] += 1
    offsets = dict(position.offsets)
    for store in stores:
        offsets[store] = found[store][2] + heads[store]
    more = any(heads[s] < len(pages[s].history) or pages[s].next_page_token for s in stores)
    if more:
        response.next_page_token = _Position(offsets, addresses).token(session_id)
    return response


async def delete_session(pool: EndpointPool, session_id: str) -> bool:
    endpoints = list(_distinct_endpoints(pool).values())
    if not endpoints:
        raise SessionsFailed(
            grpc.StatusCode.UNAVAILABLE, "no agent replica is available to ask about sessions", NO_REPLICA
        )
    request = common_pb2.DeleteSessionRequest(session_id=session_id)
    answers, silent = await _ask(endpoints, lambda e: e.stub.DeleteSession(request, timeout=CALL_TIMEOUT_S))
    if not answers:
        raise _nobody(silent)
    return any(answer.deleted for _, answer in answers)
