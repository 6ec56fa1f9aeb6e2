"""The benchmark's workload: one echo turn of 20 chunks of 4 words.

The constants mirror `services/echo` (CHUNKS, WORDS_PER_CHUNK) without
importing it, so processes that only need the workload (the raw baseline
server, the load client) do not pay for AgentScope. `check_turn` verifies
that a server really streamed this workload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle, islice

from meshscope.v1 import agent_pb2
from meshscope.wire import user_message

CHUNKS = 20
WORDS_PER_CHUNK = 4
INPUT_TEXT = "the quick brown fox jumps over the lazy dog"
ECHO_AGENT = "echo"


def echo_chunks(text: str) -> list[str]:
    """The deltas the echo agent streams for `text`: its words cycled into CHUNKS chunks."""
    words = text.split() or ["echo"]
    stream = list(islice(cycle(words), CHUNKS * WORDS_PER_CHUNK))
    return [
        (" " if i else "") + " ".join(stream[i * WORDS_PER_CHUNK : (i + 1) * WORDS_PER_CHUNK])
        for i in range(CHUNKS)
    ]


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
