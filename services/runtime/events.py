"""Mapping AgentScope 2.x agent events onto the wire `AgentEvent`.

Every AgentScope event type has a wire form; the ones without a dedicated
message (human-in-the-loop requests, custom notifications) travel as a
`CustomEvent` carrying their JSON. The `ReplyAssembler` rebuilds each reply
from the events themselves, because AgentScope's final `Msg` only holds the
last model call's blocks; the rebuilt message rides on `reply_end`.
"""

from __future__ import annotations

import base64
from typing import Any

from agentscope.event import EventType
from agentscope.message import AssistantMsg, Msg

from meshscope.v1 import agent_pb2, common_pb2
from services.runtime.messages import (
    TOOL_RESULT_STATES,
    block_to_part,
    msg_to_message,
    to_struct,
)

_BLOCK_KINDS = {
    EventType.TEXT_BLOCK_START: agent_pb2.BLOCK_KIND_TEXT,
    EventType.TEXT_BLOCK_END: agent_pb2.BLOCK_KIND_TEXT,
    EventType.THINKING_BLOCK_START: agent_pb2.BLOCK_KIND_THINKING,
    EventType.THINKING_BLOCK_END: agent_pb2.BLOCK_KIND_THINKING,
    EventType.DATA_BLOCK_START: agent_pb2.BLOCK_KIND_DATA,
    EventType.DATA_BLOCK_END: agent_pb2.BLOCK_KIND_DATA,
}


class ReplyAssembler:
    """Rebuilds every reply of a turn (a team streams several) from its events."""

    def __init__(self) -> None:
        self._replies: dict[str, Msg] = {}
        self._authors: dict[str, str] = {}
        self.root_reply_id: str | None = None

    def apply(self, event: Any) -> None:
        """Fold one AgentScope event into the reply it belongs to."""
        reply_id = getattr(event, "reply_id", None)
        if reply_id is None:
            return
        if event.type == EventType.REPLY_START:
            self._replies[reply_id] = AssistantMsg(name=event.name, content=[], id=reply_id)
            self._authors[reply_id] = event.name
            if self.root_reply_id is None:
                self.root_reply_id = reply_id
            return
        reply = self._replies.get(reply_id)
        if reply is not None:
            reply.append_event(event)

    def author(self, reply_id: str) -> str:
        """The agent that produced a reply ('' when unknown)."""
        return self._authors.get(reply_id, "")

    def reply(self, reply_id: str) -> Msg | None:
        """The reply rebuilt so far."""
        return self._replies.get(reply_id)

    @property
    def root_reply(self) -> Msg | None:
        """The hosted agent's own reply (the first one that started)."""
        return None if self.root_reply_id is None else self._replies.get(self.root_reply_id)


class EventEncoder:
    """Numbers and encodes the events of one Invoke stream."""

    def __init__(self, agent: str) -> None:
        self._agent = agent
        self._sequence = 0
        self.assembler = ReplyAssembler()

    @property
    def sent(self) -> int:
        """How many events were encoded so far."""
        return self._sequence

    def _envelope(self, *, event_id: str = "", reply_id: str = "", created_at: str = "") -> agent_pb2.AgentEvent:
        self._sequence += 1
        return agent_pb2.AgentEvent(
            sequence=self._sequence,
            event_id=event_id,
            reply_id=reply_id,
            created_at=created_at,
            agent=self.assembler.author(reply_id) or self._agent,
        )

    def encode(self, event: Any) -> agent_pb2.AgentEvent:
        """Fold `event` into its reply, then encode it for the wire."""
        self.assembler.apply(event)
        reply_id = getattr(event, "reply_id", "") or ""
        out = self._envelope(event_id=event.id, reply_id=reply_id, created_at=event.created_at)
        _fill(out, event, self.assembler)
        return out

    def error(self, code: str, message: str, *, retryable: bool = False) -> agent_pb2.AgentEvent:
        """The terminal error event of a failed stream."""
        out = self._envelope(reply_id=self.assembler.root_reply_id or "")
        out.error.CopyFrom(agent_pb2.ErrorEvent(code=code, message=message, retryable=retryable))
        return out


def _custom(out: agent_pb2.AgentEvent, event: Any) -> None:
    payload = event.model_dump(mode="json", exclude={"id", "created_at", "type", "reply_id"})
    name = event.name if event.type == EventType.CUSTOM else str(event.type)
    value = payload.get("value", payload) if event.type == EventType.CUSTOM else payload
    out.custom.name = name
    struct = to_struct(value)
    if struct is not None:
        out.custom.value.CopyFrom(struct)


def _fill(out: agent_pb2.AgentEvent, event: Any, assembler: ReplyAssembler) -> None:  # noqa: C901
    """Set the `kind` of `out` from an AgentScope event."""
    match event.type:
        case EventType.REPLY_START:
            out.reply_start.CopyFrom(
                agent_pb2.ReplyStart(
                    session_id=event.session_id, name=event.name, role=common_pb2.ROLE_ASSISTANT
                )
            )
        case EventType.REPLY_END:
            end = agent_pb2.ReplyEnd(finished_reason=str(event.finished_reason))
            reply = assembler.reply(event.reply_id)
            if reply is not None:
                end.message.CopyFrom(msg_to_message(reply))
            out.reply_end.CopyFrom(end)
        case EventType.MODEL_CALL_START:
            out.model_call_start.model_name = event.model_name
        case EventType.MODEL_CALL_END:
            out.model_call_end.CopyFrom(
                agent_pb2.ModelCallEnd(
                    usage=common_pb2.Usage(
                        input_tokens=event.input_tokens,
                        output_tokens=event.output_tokens,
                        cache_input_tokens=event.cache_input_tokens,
                        cache_creation_input_tokens=event.cache_creation_input_tokens,
                    ),
                    finished_reason=str(event.finished_reason),
                )
            )
        case EventType.TEXT_BLOCK_START | EventType.THINKING_BLOCK_START:
            out.block_start.CopyFrom(agent_pb2.BlockStart(block_id=event.block_id, kind=_BLOCK_KINDS[event.type]))
        case EventType.DATA_BLOCK_START:
            out.block_start.CopyFrom(
                agent_pb2.BlockStart(
                    block_id=event.block_id,
                    kind=agent_pb2.BLOCK_KIND_DATA,
                    media_type=event.media_type,
                    name=event.name or "",
                )
            )
        case EventType.TEXT_BLOCK_DELTA:
            out.text_delta.CopyFrom(agent_pb2.TextDelta(block_id=event.block_id, delta=event.delta))
        case EventType.THINKING_BLOCK_DELTA:
            out.thinking_delta.CopyFrom(agent_pb2.ThinkingDelta(block_id=event.block_id, delta=event.delta))
        case EventType.DATA_BLOCK_DELTA:
            delta = agent_pb2.DataDelta(block_id=event.block_id, media_type=event.media_type)
            if event.url is not None:
                delta.url = str(event.url)
            else:
                delta.data = base64.b64decode(event.data or "")
            out.data_delta.CopyFrom(delta)
        case EventType.TEXT_BLOCK_END | EventType.THINKING_BLOCK_END | EventType.DATA_BLOCK_END:
            end = agent_pb2.BlockEnd(block_id=event.block_id, kind=_BLOCK_KINDS[event.type])
            text = getattr(event, "text", None)
            if text is not None:
                end.text = text
            out.block_end.CopyFrom(end)
        case EventType.TOOL_CALL_START:
            out.tool_call_start.CopyFrom(
                agent_pb2.ToolCallStart(tool_call_id=event.tool_call_id, name=event.tool_call_name)
            )
        case EventType.TOOL_CALL_DELTA:
            out.tool_call_delta.CopyFrom(agent_pb2.ToolCallDelta(tool_call_id=event.tool_call_id, delta=event.delta))
        case EventType.TOOL_CALL_END:
            out.tool_call_end.tool_call_id = event.tool_call_id
        case EventType.TOOL_RESULT_START:
            out.tool_result_start.CopyFrom(
                agent_pb2.ToolResultStart(tool_call_id=event.tool_call_id, name=event.tool_call_name)
            )
        case EventType.TOOL_RESULT_TEXT_DELTA:
            out.tool_result_delta.CopyFrom(
                agent_pb2.ToolResultDelta(tool_call_id=event.tool_call_id, part=common_pb2.Part(text=event.delta))
            )
        case EventType.TOOL_RESULT_DATA_DELTA:
            part = common_pb2.Part(id=event.block_id)
            if event.url is not None:
                part.url.CopyFrom(common_pb2.UrlPart(url=str(event.url), media_type=event.media_type))
            else:
                part.data.CopyFrom(
                    common_pb2.DataPart(data=base64.b64decode(event.data or ""), media_type=event.media_type)
                )
            out.tool_result_delta.CopyFrom(agent_pb2.ToolResultDelta(tool_call_id=event.tool_call_id, part=part))
        case EventType.TOOL_RESULT_END:
            end = agent_pb2.ToolResultEnd(
                tool_call_id=event.tool_call_id,
                state=TOOL_RESULT_STATES.get(str(event.state), common_pb2.TOOL_RESULT_STATE_UNSPECIFIED),
            )
            metadata = to_struct(event.metadata)
            if metadata is not None:
                end.metadata.CopyFrom(metadata)
            out.tool_result_end.CopyFrom(end)
        case EventType.HINT_BLOCK:
            hint_part = block_to_part(_hint_block(event))
            out.hint.CopyFrom(agent_pb2.HintEvent(block_id=event.block_id, hint=hint_part.hint))
        case _:
            _custom(out, event)


def _hint_block(event: Any) -> Any:
    from agentscope.message import HintBlock

    return HintBlock(id=event.block_id, hint=event.hint, source=event.source)
