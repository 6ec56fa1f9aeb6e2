"""Mapping AgentScope 2.x agent events onto the wire `AgentEvent`.

Every AgentScope event type has a wire form; the ones without a dedicated
message (human-in-the-loop requests, custom notifications) travel as a
`CustomEvent` carrying their JSON. The `ReplyAssembler` rebuilds each reply
from the events themselves, because AgentScope's final `Msg` only holds the
last model call's blocks; the rebuilt message rides on `reply_end`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from agentscope.event import EventType
from agentscope.message import AssistantMsg, HintBlock, Msg, TextBlock

from meshscope.codec import TOOL_RESULT_STATES, from_struct, to_struct
from meshscope.services.runtime.errors import EventTooLarge, MeshError
from meshscope.services.runtime.messages import block_from_part, block_to_part, msg_to_message
from meshscope.v1 import agent_pb2, common_pb2

_TEXT_BLOCK_DELTA = EventType.TEXT_BLOCK_DELTA

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
        self._pending_text: dict[str, list[tuple[str, str]]] = {}
        """Per reply, text deltas not yet folded into its blocks: appending each
        delta to the pydantic block is costly, so they are joined once per block."""
        self.root_reply_id: str | None = None

    def add_text(self, reply_id: str, block_id: str, delta: str) -> None:
        """Fold one text delta into its reply (the hot path: most events are deltas)."""
        pending = self._pending_text.get(reply_id)
        if pending is not None:
            pending.append((block_id, delta))

    def apply(self, event: Any) -> None:
        """Fold one AgentScope event into the reply it belongs to."""
        reply_id = getattr(event, "reply_id", None)
        if reply_id is None:
            return
        if event.type == EventType.TEXT_BLOCK_DELTA:
            self.add_text(reply_id, event.block_id, event.delta)
            return
        self._flush_text(reply_id)
        if event.type == EventType.REPLY_START:
            # Dated by its start event, so a receiver rebuilding it from the wire gets the same time.
            self._replies[reply_id] = AssistantMsg(
                name=event.name, content=[], id=reply_id, created_at=event.created_at
            )
            self._authors[reply_id] = event.name
            self._pending_text[reply_id] = []
            if self.root_reply_id is None:
                self.root_reply_id = reply_id
            return
        reply = self._replies.get(reply_id)
        if reply is not None:
            reply.append_event(event)

    def _flush_text(self, reply_id: str) -> None:
        pending = self._pending_text.get(reply_id)
        if not pending:
            return
        joined: dict[str, list[str]] = {}
        for block_id, delta in pending:
            joined.setdefault(block_id, []).append(delta)
        pending.clear()
        for block in self._replies[reply_id].content:
            if isinstance(block, TextBlock) and block.id in joined:
                block.text += "".join(joined.pop(block.id))

    @property
    def authors(self) -> Mapping[str, str]:
        """The agent that produced each reply started so far, by reply id."""
        return self._authors

    def reply(self, reply_id: str) -> Msg | None:
        """The reply rebuilt so far."""
        if reply_id in self._replies:
            self._flush_text(reply_id)
        return self._replies.get(reply_id)

    @property
    def root_reply(self) -> Msg | None:
        """The hosted agent's own reply (the first one that started)."""
        return None if self.root_reply_id is None else self.reply(self.root_reply_id)


class EventEncoder:
    """Numbers and encodes the events of one Invoke stream."""

    def __init__(self, agent: str, max_bytes: int | None = None) -> None:
        self._agent = agent
        self._sequence = 0
        self._max_bytes = max_bytes
        self.assembler = ReplyAssembler()

    @property
    def sent(self) -> int:
        """How many events were encoded so far."""
        return self._sequence

    def _envelope(
        self, *, event_id: str = "", reply_id: str = "", created_at: str = ""
    ) -> agent_pb2.AgentEvent:
        self._sequence += 1
        return agent_pb2.AgentEvent(
            sequence=self._sequence,
            event_id=event_id,
            reply_id=reply_id,
            created_at=created_at,
            agent=self.assembler.authors.get(reply_id) or self._agent,
        )

    def encode(self, event: Any) -> agent_pb2.AgentEvent:
        """Fold `event` into its reply, then encode it for the wire."""
        reply_id = getattr(event, "reply_id", "") or ""
        if event.type == _TEXT_BLOCK_DELTA:
            # Most of a stream: set in place, with no dispatch, and joined into the
            # reply once per block rather than appended to it delta by delta.
            self.assembler.add_text(reply_id, event.block_id, event.delta)
            out = self._envelope(event_id=event.id, reply_id=reply_id, created_at=event.created_at)
            text_delta = out.text_delta
            text_delta.block_id = event.block_id
            text_delta.delta = event.delta
        else:
            self.assembler.apply(event)  # first: a reply's start names its author
            out = self._envelope(event_id=event.id, reply_id=reply_id, created_at=event.created_at)
            _fill(out, event, self.assembler)
        if self._max_bytes is not None:
            self._check_size(out)
        return out

    def _check_size(self, out: agent_pb2.AgentEvent) -> None:
        """Raise `EventTooLarge` before gRPC would refuse to send `out` (and end the call unexplained)."""
        assert self._max_bytes is not None
        size = out.ByteSize()
        if size > self._max_bytes:
            self._sequence -= 1  # never sent: the error event takes its place, leaving no gap
            kind = out.WhichOneof("kind")
            raise EventTooLarge(
                f"agent {self._agent!r}: its {kind} event is {size} bytes, over this server's message "
                f"limit of {self._max_bytes} bytes (MESHSCOPE_GRPC_MAX_MESSAGE_BYTES)"
            )

    def error(self, error: MeshError) -> agent_pb2.AgentEvent:
        """The terminal error event of a stream that fails with `error`: its code, message,
        retryability and reason (the same the stream's status then carries)."""
        out = self._envelope(reply_id=self.assembler.root_reply_id or "")
        out.error.CopyFrom(
            agent_pb2.ErrorEvent(
                code=error.code.name, message=error.message, retryable=error.retryable, reason=error.reason
            )
        )
        return out


def _custom(out: agent_pb2.AgentEvent, event: Any) -> None:
    payload = event.model_dump(mode="json", exclude={"id", "created_at", "type", "reply_id"})
    name = event.name if event.type == EventType.CUSTOM else str(event.type)
    value = payload.get("value", payload) if event.type == EventType.CUSTOM else payload
    out.custom.name = name
    struct = to_struct(value)
    if struct is not None:
        out.custom.value.CopyFrom(struct)


def _fill(out: agent_pb2.AgentEvent, event: Any, assembler: ReplyAssembler) -> None:
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
            out.block_start.CopyFrom(
                agent_pb2.BlockStart(block_id=event.block_id, kind=_BLOCK_KINDS[event.type])
            )
        case EventType.DATA_BLOCK_START:
            out.block_start.CopyFrom(
                agent_pb2.BlockStart(
                    block_id=event.block_id,
                    kind=agent_pb2.BLOCK_KIND_DATA,
                    media_type=event.media_type,
                    name=event.name or "",
                )
            )
        case EventType.THINKING_BLOCK_DELTA:
            out.thinking_delta.block_id = event.block_id
            out.thinking_delta.delta = event.delta
        case EventType.DATA_BLOCK_DELTA:
            delta = agent_pb2.DataDelta(block_id=event.block_id, media_type=event.media_type)
            if event.url is not None:
                delta.url = str(event.url)
            else:
                delta.data = base64.b64decode(event.data or "")
            out.data_delta.CopyFrom(delta)
        case EventType.TEXT_BLOCK_END | EventType.THINKING_BLOCK_END | EventType.DATA_BLOCK_END:
            block_end = agent_pb2.BlockEnd(block_id=event.block_id, kind=_BLOCK_KINDS[event.type])
            text = getattr(event, "text", None)
            if text is not None:
                block_end.text = text
            out.block_end.CopyFrom(block_end)
        case EventType.TOOL_CALL_START:
            out.tool_call_start.CopyFrom(
                agent_pb2.ToolCallStart(tool_call_id=event.tool_call_id, name=event.tool_call_name)
            )
        case EventType.TOOL_CALL_DELTA:
            out.tool_call_delta.tool_call_id = event.tool_call_id
            out.tool_call_delta.delta = event.delta
        case EventType.TOOL_CALL_END:
            out.tool_call_end.tool_call_id = event.tool_call_id
        case EventType.TOOL_RESULT_START:
            out.tool_result_start.CopyFrom(
                agent_pb2.ToolResultStart(tool_call_id=event.tool_call_id, name=event.tool_call_name)
            )
        case EventType.TOOL_RESULT_TEXT_DELTA:
            out.tool_result_delta.CopyFrom(
                agent_pb2.ToolResultDelta(
                    tool_call_id=event.tool_call_id, part=common_pb2.Part(text=event.delta)
                )
            )
        case EventType.TOOL_RESULT_DATA_DELTA:
            part = common_pb2.Part(id=event.block_id)
            if event.url is not None:
                part.url.CopyFrom(common_pb2.UrlPart(url=str(event.url), media_type=event.media_type))
            else:
                part.data.CopyFrom(
                    common_pb2.DataPart(data=base64.b64decode(event.data or ""), media_type=event.media_type)
                )
            out.tool_result_delta.CopyFrom(
                agent_pb2.ToolResultDelta(tool_call_id=event.tool_call_id, part=part)
            )
        case EventType.TOOL_RESULT_END:
            result_end = agent_pb2.ToolResultEnd(
                tool_call_id=event.tool_call_id,
                state=TOOL_RESULT_STATES.get(str(event.state), common_pb2.TOOL_RESULT_STATE_UNSPECIFIED),
            )
            metadata = to_struct(event.metadata)
            if metadata is not None:
                result_end.metadata.CopyFrom(metadata)
            out.tool_result_end.CopyFrom(result_end)
        case EventType.HINT_BLOCK:
            hint_part = block_to_part(_hint_block(event))
            out.hint.CopyFrom(agent_pb2.HintEvent(block_id=event.block_id, hint=hint_part.hint))
        case _:
            _custom(out, event)


def _hint_block(event: Any) -> HintBlock:
    return HintBlock(id=event.block_id, hint=event.hint, source=event.source)


_REVERSE_STATES = {v: k for k, v in TOOL_RESULT_STATES.items()}


def decode_event(wire: agent_pb2.AgentEvent) -> Any | None:
    """The AgentScope event a wire event carries (None for error/custom events).

    With `rebuild_reply` this is the proof that the wire loses nothing: the
    receiver replays the events into an `AssistantMsg` exactly as the sender did.
    """
    decoded = _decode(wire)
    if decoded is not None:
        if wire.event_id:
            decoded.id = wire.event_id
        if wire.created_at:
            decoded.created_at = wire.created_at
    return decoded


def _decode(wire: agent_pb2.AgentEvent) -> Any | None:
    # Payloads go through `model_validate` so pydantic coerces strings to
    # AgentScope's enums exactly as it does for events it parses itself.
    from agentscope import event as ev

    kind = wire.WhichOneof("kind")
    cls: Any = None
    fields: dict[str, Any] = {"reply_id": wire.reply_id}
    if kind == "reply_start":
        cls = ev.ReplyStartEvent
        fields |= {"session_id": wire.reply_start.session_id, "name": wire.reply_start.name}
    elif kind == "reply_end":
        cls = ev.ReplyEndEvent
        fields |= {"session_id": "", "finished_reason": wire.reply_end.finished_reason or "completed"}
    elif kind == "model_call_start":
        cls = ev.ModelCallStartEvent
        fields["model_name"] = wire.model_call_start.model_name
    elif kind == "model_call_end":
        cls = ev.ModelCallEndEvent
        u = wire.model_call_end.usage
        fields |= {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_input_tokens": u.cache_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "finished_reason": wire.model_call_end.finished_reason or "completed",
        }
    elif kind == "block_start":
        start = wire.block_start
        fields["block_id"] = start.block_id
        if start.kind == agent_pb2.BLOCK_KIND_TEXT:
            cls = ev.TextBlockStartEvent
        elif start.kind == agent_pb2.BLOCK_KIND_THINKING:
            cls = ev.ThinkingBlockStartEvent
        else:
            cls = ev.DataBlockStartEvent
            fields |= {"media_type": start.media_type, "name": start.name or None}
    elif kind == "text_delta":
        cls = ev.TextBlockDeltaEvent
        fields |= {"block_id": wire.text_delta.block_id, "delta": wire.text_delta.delta}
    elif kind == "thinking_delta":
        cls = ev.ThinkingBlockDeltaEvent
        fields |= {"block_id": wire.thinking_delta.block_id, "delta": wire.thinking_delta.delta}
    elif kind == "data_delta":
        cls = ev.DataBlockDeltaEvent
        data = wire.data_delta
        fields |= {"block_id": data.block_id, "media_type": data.media_type}
        if data.WhichOneof("source") == "url":
            fields["url"] = data.url
        else:
            fields["data"] = base64.b64encode(data.data).decode("ascii")
    elif kind == "block_end":
        end = wire.block_end
        fields["block_id"] = end.block_id
        if end.kind == agent_pb2.BLOCK_KIND_TEXT:
            cls = ev.TextBlockEndEvent
            fields["text"] = end.text if end.HasField("text") else None
        elif end.kind == agent_pb2.BLOCK_KIND_THINKING:
            cls = ev.ThinkingBlockEndEvent
        else:
            cls = ev.DataBlockEndEvent
    elif kind == "tool_call_start":
        cls = ev.ToolCallStartEvent
        fields |= {
            "tool_call_id": wire.tool_call_start.tool_call_id,
            "tool_call_name": wire.tool_call_start.name,
        }
    elif kind == "tool_call_delta":
        cls = ev.ToolCallDeltaEvent
        fields |= {"tool_call_id": wire.tool_call_delta.tool_call_id, "delta": wire.tool_call_delta.delta}
    elif kind == "tool_call_end":
        cls = ev.ToolCallEndEvent
        fields["tool_call_id"] = wire.tool_call_end.tool_call_id
    elif kind == "tool_result_start":
        cls = ev.ToolResultStartEvent
        fields |= {
            "tool_call_id": wire.tool_result_start.tool_call_id,
            "tool_call_name": wire.tool_result_start.name,
        }
    elif kind == "tool_result_delta":
        delta = wire.tool_result_delta
        part = delta.part
        fields["tool_call_id"] = delta.tool_call_id
        part_kind = part.WhichOneof("kind")
        if part_kind == "text":
            cls = ev.ToolResultTextDeltaEvent
            fields["delta"] = part.text
        elif part_kind == "url":
            cls = ev.ToolResultDataDeltaEvent
            fields |= {"block_id": part.id, "media_type": part.url.media_type, "url": part.url.url}
        else:
            cls = ev.ToolResultDataDeltaEvent
            fields |= {
                "block_id": part.id,
                "media_type": part.data.media_type,
                "data": base64.b64encode(part.data.data).decode("ascii"),
            }
    elif kind == "tool_result_end":
        cls = ev.ToolResultEndEvent
        end_result = wire.tool_result_end
        fields |= {
            "tool_call_id": end_result.tool_call_id,
            "state": _REVERSE_STATES.get(end_result.state, "success"),
            "metadata": from_struct(end_result.metadata),
        }
    elif kind == "hint":
        cls = ev.HintBlockEvent
        hint = wire.hint
        block = block_from_part(common_pb2.Part(id=hint.block_id, hint=hint.hint))
        fields |= {"block_id": hint.block_id, "source": hint.hint.source or None, "hint": block.hint}
    if cls is None:
        return None
    return cls.model_validate(fields)


def rebuild_reply(events: list[agent_pb2.AgentEvent]) -> Msg | None:
    """Rebuild the hosted agent's reply from wire events alone."""
    assembler = ReplyAssembler()
    for wire in events:
        decoded = decode_event(wire)
        if decoded is not None:
            assembler.apply(decoded)
    return assembler.root_reply
