"""Registering generated servicers so that a request that does not decode is INVALID_ARGUMENT.

grpc.aio decodes each request before the servicer sees it. Bytes that are not a
valid message (or a string field that is not UTF-8) make it answer UNKNOWN,
quoting the Python exception's class, and log a traceback: no precise status for
the caller. `add_servicer` registers exactly the handlers a generated
`add_*Servicer_to_server` function builds, with the decoding moved into the call,
where a failure can be answered properly. Only unary requests are handled (every
meshscope RPC, and the health service's, takes one request message).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from meshscope.v1 import common_pb2
from meshscope.wire import reason_metadata

Deserializer = Callable[[bytes], Any]
Serializer = Callable[[Any], bytes]


class _CapturingServer:
    """Stands in for the server while a generated function registers its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: Mapping[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: the generic handler is rebuilt from the captured method handlers."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service = service
        self.handlers = handlers


async def _decode(deserializer: Deserializer, raw: bytes, context: grpc.aio.ServicerContext) -> Any:
    try:
        return deserializer(raw)
    except DecodeError as exc:
        context.set_trailing_metadata(reason_metadata(common_pb2.ERROR_REASON_INVALID_INPUT))
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request does not decode: {exc}")


def _unary_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], deserializer: Deserializer
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(await _decode(deserializer, raw, context), context)

    return call


def _unary_stream(behavior: Any, deserializer: Deserializer) -> Any:
    # grpc.aio streams what an async generator yields, or lets a coroutine call
    # `context.write` (the health service's Watch does).
    if not inspect.isasyncgenfunction(behavior):
        return _unary_unary(behavior, deserializer)

    # Re-yielded, not written with `context.write`: server interceptors (OpenTelemetry's
    # among them) iterate a streaming handler, so it must stay an async generator.
    # `aclosing` ends the servicer's generator with the call.
    async def call(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        request = await _decode(deserializer, raw, context)
        async with contextlib.aclosing(behavior(request, context)) as responses:
            async for response in responses:
                yield response

    return call


def _strict(handler: Any) -> Any:
    """`handler` (a generated RpcMethodHandler, a namedtuple) taking raw bytes and decoding them itself."""
    deserializer = handler.request_deserializer
    if deserializer is None or handler.request_streaming:
        return handler
    if handler.response_streaming:
        return handler._replace(
            request_deserializer=None, unary_stream=_unary_stream(handler.unary_stream, deserializer)
        )
    return handler._replace(
        request_deserializer=None, unary_unary=_unary_unary(handler.unary_unary, deserializer)
    )


def add_servicer(
    server: grpc.aio.Server,
    register: Callable[[Any, Any], None],
    servicer: object,
    response_serializers: Mapping[str, Serializer] | None = None,
) -> None:
    """Like `register(servicer, server)` (a generated `add_*Servicer_to_server`), with strict decoding.

    `response_serializers` (method name -> encoder) replace the generated response encoder of
    those methods, which takes the declared response type only: for a servicer that yields
    messages of another type encoded the same way (the orchestrator's relayed events,
    meshscope/v1/relay.proto). TypeError names a method the service does not have.
    """
    captured = _CapturingServer()
    register(servicer, captured)
    if not captured.service:
        raise TypeError(f"{register.__name__} registered no method handlers")
    handlers = {name: _strict(handler) for name, handler in captured.handlers.items()}
    for method, serializer in (response_serializers or {}).items():
        if method not in handlers:
            raise TypeError(f"{captured.service} has no method {method!r}")
        handlers[method] = handlers[method]._replace(response_serializer=serializer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(captured.service, handlers),))
    server.add_registered_method_handlers(captured.service, handlers)
