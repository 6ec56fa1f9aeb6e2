"""The benchmark's workload: one echo turn of 20 chunks of 4 words.

The constants mirror `services/echo` (CHUNKS, WORDS_PER_CHUNK) without
importing it, so processes that only need the workload (the raw baseline
server, the load client) do not pay for AgentScope; they live in
`bench.echo_text` (standard library only) and are re-exported here. `check_turn` verifies
that a server really streamed this workload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.echo_text import CHUNKS, INPUT_TEXT, WORDS_PER_CHUNK, echo_chunks
from meshscope.v1 import agent_pb2
from meshscope.wire import user_message

__all__ = [
    "CHUNKS",
    "ECHO_AGENT",
    "INPUT_TEXT",
    "WORDS_PER_CHUNK",
    "TurnShape",
    "check_completed",
    "check_turn",
    "echo_chunks",
    "invoke_request",
]

ECHO_AGENT = "echo"


def invoke_request(agent: str, text: str, session_id: str) -> agent_pb2.InvokeRequest:
    """An `Invoke` request carrying `text` as a user message."""
    return agent_pb2.InvokeRequest(agent=agent, input=user_message(text), session_id=session_id)


@dataclass(frozen=True)
class TurnShape:
    """What one streamed turn looked like on the wire."""

    events: int
    text_deltas: int
    wire_bytes: int
    text: str


def check_turn(events: Sequence[agent_pb2.AgentEvent]) -> TurnShape:
    """The shape of an echo turn; raises if it is not the benchmark's workload."""
    deltas = [e.text_delta.delta for e in events if e.HasField("text_delta")]
    text = "".join(deltas)
    if deltas != echo_chunks(INPUT_TEXT):
        raise AssertionError(f"unexpected deltas: {deltas!r}")
    if not events or not events[-1].HasField("reply_end"):
        raise AssertionError("the turn did not end with reply_end")
    final = "".join(p.text for p in events[-1].reply_end.message.parts)
    if final != text:
        raise AssertionError(f"reply_end text {final!r} differs from the streamed text {text!r}")
    return TurnShape(len(events), len(deltas), sum(e.ByteSize() for e in events), text)


def check_completed(events: Sequence[agent_pb2.AgentEvent]) -> None:
    """Raise unless the turn streamed no error and ended with reply_end."""
    if any(e.HasField("error") for e in events):
        raise AssertionError("the turn streamed an error event")
    if not events or not events[-1].HasField("reply_end"):
        raise AssertionError("the turn did not end with reply_end")
