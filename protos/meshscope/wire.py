"""Rules and helpers of the wire contract that every side shares.

The agent services and the orchestrator never import each other (they meet
only on the wire), so what both must agree on lives here, beside the stubs:
how a user message is built, how a message's text is read, which session
and user ids are acceptable, and how a status declares its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from meshscope.v1 import common_pb2

MAX_KEY_LENGTH = 256
"""Longest session or user id (and agent or target name): ids become storage keys and are
quoted in error messages, which must fit gRPC's metadata limit."""


DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""gRPC's default message limit: the default of MESHSCOPE_GRPC_MAX_MESSAGE_BYTES on every side (one
value for agents and orchestrator, so what one side may send the other may receive)."""

MAX_RUN_TIMEOUT_S = 2**31 - 1
"""The longest run deadline a caller may ask for (gRPC deadlines overflow far beyond it)."""

ERROR_REASON_METADATA = "meshscope-error-reason"
"""Trailing metadata every meshscope service sets on the statuses it sends itself: the name of
the call's `common_pb2.ErrorReason` value, e.g. "ERROR_REASON_DRAINING". A status without it
comes from gRPC (the transport), not from a service: that is how a caller tells a replica's
own UNAVAILABLE (unreachable, dropped the call) from a service's (a shared store is down)."""


def reason_metadata(reason: common_pb2.ErrorReason) -> tuple[tuple[str, str]]:
    """The trailing metadata that declares `reason` (set it before aborting the call)."""
    return ((ERROR_REASON_METADATA, common_pb2.ErrorReason.Name(reason)),)


def declared_reason(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> common_pb2.ErrorReason | None:
    """The reason a status declares in its trailing `metadata`, or None when it declares none.

    `metadata` is what `grpc.aio.AioRpcError.trailing_metadata()` returns (pairs of key and
    value; None or empty when there are none). A name this side does not know (a newer peer's)
    reads as ERROR_REASON_UNSPECIFIED: declared, so the service answered, but with no reason
    this side can act on.
    """
    if not metadata:
        return None
    for key, value in metadata:
        if key == ERROR_REASON_METADATA:
            name = value.decode() if isinstance(value, bytes) else str(value)
            known = common_pb2.ErrorReason.DESCRIPTOR.values_by_name.get(name)
            if known is None:
                return common_pb2.ERROR_REASON_UNSPECIFIED
            return cast(common_pb2.ErrorReason, known.number)
    return None


ROUTING_ASK = "Reply with exactly one name from: "
"""The sentence of `routing_question` before the names (the scripted model answers what follows it)."""


def routing_question(message: common_pb2.Message, choices: Sequence[str]) -> common_pb2.Message:
    """What a route pipeline's router is asked: the request, with the names it may answer.

    The instruction comes first, as its own text part, then the request's parts unchanged. The
    scripted model recognises the instruction's sentence and answers with one of the names.
    """
    instruction = (
        f"Decide which agent should handle the request below. {ROUTING_ASK}{', '.join(choices)}.\nRequest:\n"
    )
    routed = common_pb2.Message()
    routed.CopyFrom(message)
    del routed.parts[:]
    routed.parts.append(common_pb2.Part(text=instruction))
    routed.parts.extend(message.parts)
    return routed


def user_message(content: str | common_pb2.Message, name: str = "user") -> common_pb2.Message:
    """A ROLE_USER message carrying `content` as text (a message is returned as it is)."""
    if isinstance(content, common_pb2.Message):
        return content
    return common_pb2.Message(role=common_pb2.ROLE_USER, name=name, parts=[common_pb2.Part(text=content)])


def text_of(message: common_pb2.Message) -> str:
    """The concatenated text parts of a message."""
    return "".join(part.text for part in message.parts if part.WhichOneof("kind") == "text")


def key_problem(value: str) -> str | None:
    """Why a session or user id is unacceptable (None when it is fine)."""
    if len(value) > MAX_KEY_LENGTH:
        return f"must be at most {MAX_KEY_LENGTH} characters, got {len(value)}"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters"
    if value != value.strip():
        return "must not start or end with white space"
    return None
