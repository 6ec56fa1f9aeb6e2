"""The echo agent: streams its input back as AgentScope events, with no model.

It is a plain object with `reply_stream`, so it exercises exactly the path
real agents take (state load/save, event mapping, gRPC streaming) minus the
model; the benchmarks use it to measure the mesh's own overhead. Its reply
is the input's words, cycled to `CHUNKS` chunks of `WORDS_PER_CHUNK` words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import cycle, islice
from typing import Any

from agentscope.event import (
    ReplyEndEvent,
    ReplyStartEvent,
    TextBlockDeltaEvent,
    TextBlockEndEvent,
    TextBlockStartEvent,
)
from agentscope.message import AssistantMsg, Msg, TextBlock
from agentscope.state import AgentState

from meshscope.services.runtime.definition import AgentDefinition, BuildContext, SkillInfo, StreamingAgent

CHUNKS = 20
WORDS_PER_CHUNK = 4


class EchoAgent:
    """Echoes the input in fixed-size chunks; remembers the exchange in its state."""

    def __init__(self, name: str, state: AgentState) -> None:
        self.name = name
        self.state = state

    async def reply_stream(self, inputs: Any = None) -> AsyncIterator[Any]:
        msg: Msg = inputs
        words = " ".join(b.text for b in msg.content if isinstance(b, TextBlock)).split() or ["echo"]
        stream = list(islice(cycle(words), CHUNKS * WORDS_PER_CHUNK))
        deltas = [
            (" " if i else "") + " ".join(stream[i * WORDS_PER_CHUNK : (i + 1) * WORDS_PER_CHUNK])
            for i in range(CHUNKS)
        ]
        reply = AssistantMsg(name=self.name, content=[TextBlock(text="".join(deltas))])
        reply_id, block_id = reply.id, reply.content[0].id
        yield ReplyStartEvent(session_id=self.state.session_id, reply_id=reply_id, name=self.name)
        yield TextBlockStartEvent(reply_id=reply_id, block_id=block_id)
        for delta in deltas:
            yield TextBlockDeltaEvent(reply_id=reply_id, block_id=block_id, delta=delta)
        yield TextBlockEndEvent(reply_id=reply_id, block_id=block_id)
        self.state.context.extend([msg, reply])
        yield ReplyEndEvent(session_id=self.state.session_id, reply_id=reply_id)


def _build(context: BuildContext) -> StreamingAgent:
    return EchoAgent(context.name, context.state)


AGENT = AgentDefinition(
    name="echo",
    description="Streams its input back in 20 chunks of 4 words, without a model.",
    skills=(SkillInfo(id="echo", name="Echo", description="Repeats the input.", tags=("test",)),),
    build=_build,
    needs_model=False,
)
