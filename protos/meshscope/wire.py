"""Rules and helpers of the wire contract that every side shares.

The agent services and the orchestrator never import each other (they meet
only on the wire), so what both must agree on lives here, beside the stubs:
how a user message is built, how a message's text is read, and which session
and user ids are acceptable.
"""

from __future__ import annotations

from meshscope.v1 import common_pb2

MAX_KEY_LENGTH = 256
"""Longest session or user id (and agent or target name): ids become storage keys and are
quoted in error messages, which must fit gRPC's metadata limit."""


MAX_RUN_TIMEOUT_S = 2**31 - 1
"""The longest run deadline a caller may ask for (gRPC deadlines overflow far beyond it)."""

ERROR_KIND_METADATA = "meshscope-error"
"""Trailing metadata an agent service sets on its own errors, naming the error's kind (e.g.
ShuttingDown, StoreUnavailable): it tells a caller an agent's own UNAVAILABLE (a shared store is
down: retrying elsewhere will not help) from a transport failure or a draining replica."""


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
