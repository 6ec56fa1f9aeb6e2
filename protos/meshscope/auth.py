"""The mesh token on the wire: channels send it, servers check it (MESHSCOPE_MESH_TOKEN).

Every channel the factory makes with a token carries `authorization: Bearer <token>` on
every call (`bearer_token`, client interceptors); every server the core builds with one
refuses a call without it (`TokenCheck`, a server interceptor) with UNAUTHENTICATED and the
declared reason ERROR_REASON_UNAUTHENTICATED, before any handler runs or any request is
decoded. The comparison takes the same time whatever the bytes sent (hmac.compare_digest).

Health checks stay open (`grpc.health.v1.Health`): Consul's gRPC checks, Kubernetes probes
and load balancers cannot send a token, and a status says nothing a caller could use.
Everything else, server reflection included, needs the token.

With TLS the token only ever travels encrypted; without it anyone on the path can read it,
so across machines use both (docs/operations.md, "Transport security").
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from meshscope.v1 import common_pb2
from meshscope.wire import reason_metadata

__all__ = ["AUTHORIZATION", "OPEN_SERVICES", "TokenCheck", "bearer_token"]

AUTHORIZATION = "authorization"
"""The metadata key the token travels in (lower case: gRPC metadata keys are)."""
OPEN_SERVICES = ("grpc.health.v1.Health",)
"""Services any caller may use without the token: health checks (see the module docstring)."""

MISSING = (
    "this mesh requires a token: send call metadata 'authorization: Bearer <token>' "
    "(meshscope processes send MESHSCOPE_MESH_TOKEN)"
)
WRONG = "the token in 'authorization' is not this mesh's token (MESHSCOPE_MESH_TOKEN)"


def _bearer(token: str) -> str:
    return f"Bearer {token}"


class TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Refuses every call whose `authorization` metadata is not `Bearer <token>` (health excepted)."""

    def __init__(self, token: str) -> None:
        self._expected = _bearer(token).encode()
        self._open = tuple(f"/{service}/" for service in OPEN_SERVICES)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        if method.startswith(self._open):
            return await continuation(details)
        problem = self._problem(details.invocation_metadata or ())
        handler = await continuation(details)
        if problem is None or handler is None:  # None: no such method, UNIMPLEMENTED as usual
            return handler
        return _refusal(handler, problem)

    def _problem(self, metadata: Any) -> str | None:
        """Why the call's metadata does not carry the token (None when it does)."""
        sent = [value for key, value in metadata if key == AUTHORIZATION]
        if not sent:
            return MISSING
        value = sent[0]
        given = value if isinstance(value, bytes) else str(value).encode()
        # compare_digest's time does not depend on how much of the token matched.
        return None if hmac.compare_digest(given, self._expected) and len(sent) == 1 else WRONG


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that ends the call UNAUTHENTICATED `message`,
    without decoding the request."""

    async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
        context.set_trailing_metadata(reason_metadata(common_pb2.ERROR_REASON_UNAUTHENTICATED))
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class _SendsToken:
    """Adds `authorization: Bearer <token>` to the metadata of each call it intercepts."""

    def __init__(self, token: str) -> None:
        self._pair = (AUTHORIZATION, _bearer(token))

    async def _intercept(self, continuation: Any, details: Any, request_or_requests: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._pair)
        return await continuation(details._replace(metadata=metadata), request_or_requests)


class _UnaryUnary(_SendsToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    intercept_unary_unary = _SendsToken._intercept


class _UnaryStream(_SendsToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    intercept_unary_stream = _SendsToken._intercept


class _StreamUnary(_SendsToken, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    intercept_stream_unary = _SendsToken._intercept


class _StreamStream(_SendsToken, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    intercept_stream_stream = _SendsToken._intercept


def bearer_token(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that send `authorization: Bearer <token>` on every call of a channel.

    One per kind of call: a grpc.aio channel files each interceptor under the first kind it
    implements only, so a single object implementing all four would only see unary calls.
    """
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
