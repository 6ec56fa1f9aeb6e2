"""Mapping AgentScope 2.x agent events onto the wire `AgentEvent`.

Every AgentScope event type has a wire form; the ones without a dedicated
message (human-in-the-loop requests, custom notifications) travel as a
`CustomEvent` carrying their JSON. The `ReplyAssembler` rebuilds each reply
from the events themselves, because AgentScope's final `Msg` only holds the
last model call's blocks; the rebuilt message rides on `reply_end`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentscope import event as ev
from agentscope.event import EventType
from agentscope.message import AssistantMsg, HintBlock, Msg, TextBlock

from meshscope.codec import TOOL_RESULT_STATES, from_struct, to_struct, usage_fields, usage_of
from meshscope.services.runtime.errors import EventTooLarge, MeshError
from meshscope.services.runtime.messages import block_from_part, block_to_part, msg_to_message
from meshscope.v1 import agent_pb2, common_pb2

_TEXT_BLOCK_DELTA = EventType.TEXT_BLOCK_DELTA


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


# ---------------------------------------------------------------- one table, both directions
#
# Each row pairs one AgentScope event class with the wire kind that carries it: the fields
# copied as they are, and for what they do not cover, the two halves of a conversion side by
# side (`to_wire` fills the wire message from the event, `from_wire` gives the event's fields
# back). `_fill` reads the rows by event type, `_decode` by wire kind, so a field added to
# one direction is in view of the other.

Wire = Any
"""The wire message of one kind (`AgentEvent.reply_start`, `.block_end`...)."""


@dataclass(frozen=True, slots=True)
class _Row:
    """One AgentScope event class and its wire form."""

    cls: type[Any]
    """The AgentScope event class (its `type` field's default names the `EventType`)."""
    kind: str
    """The `AgentEvent` oneof field that carries it."""
    fields: tuple[tuple[str, str], ...] = ()
    """(AgentScope field, wire field) pairs copied as they are."""
    block: agent_pb2.BlockKind | None = None
    """For block_start/block_end: the block kind, which tells the block event classes apart."""
    to_wire: Callable[[Any, Wire, ReplyAssembler], None] | None = None
    from_wire: Callable[[Wire], dict[str, Any]] | None = None
    matches: Callable[[Wire], bool] | None = None
    """For a wire kind several classes share: whether this row reads that wire message
    (rows are tried in order; None matches any)."""

    @property
    def type(self) -> EventType:
        default = self.cls.model_fields["type"].default
        assert isinstance(default, EventType)
        return default


def _reply_start_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    wire.role = common_pb2.ROLE_ASSISTANT


def _reply_end_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    wire.finished_reason = str(event.finished_reason)
    reply = assembler.reply(event.reply_id)
    if reply is not None:
        wire.message.CopyFrom(msg_to_message(reply))


def _reply_end_from_wire(wire: Wire) -> dict[str, Any]:
    return {"session_id": "", "finished_reason": wire.finished_reason or "completed"}


def _model_call_end_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    wire.usage.CopyFrom(usage_of(event))
    wire.finished_reason = str(event.finished_reason)


def _model_call_end_from_wire(wire: Wire) -> dict[str, Any]:
    return usage_fields(wire.usage) | {"finished_reason": wire.finished_reason or "completed"}


def _name_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    wire.name = event.name or ""


def _name_from_wire(wire: Wire) -> dict[str, Any]:
    return {"name": wire.name or None}


def _source_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    """A data delta's content: a URL, or base64 (AgentScope) as bytes (wire)."""
    if event.url is not None:
        wire.url = str(event.url)
    else:
        wire.data = base64.b64decode(event.data or "")


def _source_from_wire(wire: Wire) -> dict[str, Any]:
    if wire.WhichOneof("source") == "url":
        return {"url": wire.url}
    return {"data": base64.b64encode(wire.data).decode("ascii")}


def _text_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    """A text block's end may restate its text; unset when it does not."""
    if event.text is not None:
        wire.text = event.text


def _text_from_wire(wire: Wire) -> dict[str, Any]:
    return {"text": wire.text if wire.HasField("text") else None}


def _result_text_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    wire.part.text = event.delta


def _result_text_from_wire(wire: Wire) -> dict[str, Any]:
    return {"delta": wire.part.text}


def _result_data_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    part = wire.part
    part.id = event.block_id
    if event.url is not None:
        part.url.CopyFrom(common_pb2.UrlPart(url=str(event.url), media_type=event.media_type))
    else:
        data = base64.b64decode(event.data or "")
        part.data.CopyFrom(common_pb2.DataPart(data=data, media_type=event.media_type))


def _result_data_from_wire(wire: Wire) -> dict[str, Any]:
    part = wire.part
    if part.WhichOneof("kind") == "url":
        return {"block_id": part.id, "media_type": part.url.media_type, "url": part.url.url}
    data = base64.b64encode(part.data.data).decode("ascii")
    return {"block_id": part.id, "media_type": part.data.media_type, "data": data}


def _result_end_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    wire.state = TOOL_RESULT_STATES.get(str(event.state), common_pb2.TOOL_RESULT_STATE_UNSPECIFIED)
    metadata = to_struct(event.metadata)
    if metadata is not None:
        wire.metadata.CopyFrom(metadata)


def _result_end_from_wire(wire: Wire) -> dict[str, Any]:
    return {
        "state": TOOL_RESULT_STATES.name_of(wire.state, "success"),
        "metadata": from_struct(wire.metadata),
    }


def _hint_to_wire(event: Any, wire: Wire, assembler: ReplyAssembler) -> None:
    block = HintBlock(id=event.block_id, hint=event.hint, source=event.source)
    wire.hint.CopyFrom(block_to_part(block).hint)


def _hint_from_wire(wire: Wire) -> dict[str, Any]:
    block = block_from_part(common_pb2.Part(id=wire.block_id, hint=wire.hint))
    return {"source": wire.hint.source or None, "hint": block.hint}


def _block_is(kind: agent_pb2.BlockKind) -> Callable[[Wire], bool]:
    return lambda wire: bool(wire.kind == kind)


def _part_is_text(wire: Wire) -> bool:
    return bool(wire.part.WhichOneof("kind") == "text")


_BLOCK_ID = (("block_id", "block_id"),)
_DELTA = (("block_id", "block_id"), ("delta", "delta"))
_MEDIA = (("block_id", "block_id"), ("media_type", "media_type"))
_CALL_ID = (("tool_call_id", "tool_call_id"),)
_CALL_NAME = (("tool_call_id", "tool_call_id"), ("tool_call_name", "name"))
_TEXT, _THINKING, _DATA = agent_pb2.BLOCK_KIND_TEXT, agent_pb2.BLOCK_KIND_THINKING, agent_pb2.BLOCK_KIND_DATA

_ROWS = (
    _Row(ev.ReplyStartEvent, "reply_start", (("session_id", "session_id"), ("name", "name")),
         to_wire=_reply_start_to_wire),
    _Row(ev.ReplyEndEvent, "reply_end", to_wire=_reply_end_to_wire, from_wire=_reply_end_from_wire),
    _Row(ev.ModelCallStartEvent, "model_call_start", (("model_name", "model_name"),)),
    _Row(ev.ModelCallEndEvent, "model_call_end", to_wire=_model_call_end_to_wire,
         from_wire=_model_call_end_from_wire),
    _Row(ev.TextBlockStartEvent, "block_start", _BLOCK_ID, _TEXT, matches=_block_is(_TEXT)),
    _Row(ev.ThinkingBlockStartEvent, "block_start", _BLOCK_ID, _THINKING, matches=_block_is(_THINKING)),
    _Row(ev.DataBlockStartEvent, "block_start", _MEDIA, _DATA, _name_to_wire, _name_from_wire),
    # Inlined on the hot path by `EventEncoder.encode` (the same two fields).
    _Row(ev.TextBlockDeltaEvent, "text_delta", _DELTA),
    _Row(ev.ThinkingBlockDeltaEvent, "thinking_delta", _DELTA),
    _Row(ev.DataBlockDeltaEvent, "data_delta", _MEDIA, to_wire=_source_to_wire, from_wire=_source_from_wire),
    _Row(ev.TextBlockEndEvent, "block_end", _BLOCK_ID, _TEXT, _text_to_wire, _text_from_wire,
         matches=_block_is(_TEXT)),
    _Row(ev.ThinkingBlockEndEvent, "block_end", _BLOCK_ID, _THINKING, matches=_block_is(_THINKING)),
    _Row(ev.DataBlockEndEvent, "block_end", _BLOCK_ID, _DATA),
    _Row(ev.ToolCallStartEvent, "tool_call_start", _CALL_NAME),
    _Row(ev.ToolCallDeltaEvent, "tool_call_delta", (*_CALL_ID, ("delta", "delta"))),
    _Row(ev.ToolCallEndEvent, "tool_call_end", _CALL_ID),
    _Row(ev.ToolResultStartEvent, "tool_result_start", _CALL_NAME),
    _Row(ev.ToolResultTextDeltaEvent, "tool_result_delta", _CALL_ID, to_wire=_result_text_to_wire,
         from_wire=_result_text_from_wire, matches=_part_is_text),
    _Row(ev.ToolResultDataDeltaEvent, "tool_result_delta", _CALL_ID, to_wire=_result_data_to_wire,
         from_wire=_result_data_from_wire),
    _Row(ev.ToolResultEndEvent, "tool_result_end", _CALL_ID, to_wire=_result_end_to_wire,
         from_wire=_result_end_from_wire),
    _Row(ev.HintBlockEvent, "hint", _BLOCK_ID, to_wire=_hint_to_wire, from_wire=_hint_from_wire),
)  # fmt: skip
"""Every AgentScope event with a wire form of its own; any other travels as `custom` (its JSON).
A block of unknown kind reads as a data block, as does a tool result's non-text part."""

_BY_TYPE = {row.type: row for row in _ROWS}
_BY_KIND: dict[str, list[_Row]] = {}
for _row in _ROWS:
    _BY_KIND.setdefault(_row.kind, []).append(_row)


def _fill(out: agent_pb2.AgentEvent, event: Any, assembler: ReplyAssembler) -> None:
    """Set the `kind` of `out` from an AgentScope event (its row in `_ROWS`, else `custom`)."""
    row = _BY_TYPE.get(event.type)
    if row is None:
        _custom(out, event)
        return
    wire = getattr(out, row.kind)
    wire.SetInParent()  # a kind with no field set (or only defaults) is still that kind
    for name, wire_name in row.fields:
        setattr(wire, wire_name, getattr(event, name))
    if row.block is not None:
        wire.kind = row.block
    if row.to_wire is not None:
        row.to_wire(event, wire, assembler)


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


def _decode(event: agent_pb2.AgentEvent) -> Any | None:
    kind = event.WhichOneof("kind")
    rows = _BY_KIND.get(kind) if kind is not None else None
    if rows is None:
        return None
    wire = getattr(event, kind)
    row = next(r for r in rows if r.matches is None or r.matches(wire))
    fields: dict[str, Any] = {"reply_id": event.reply_id}
    for name, wire_name in row.fields:
        fields[name] = getattr(wire, wire_name)
    if row.from_wire is not None:
        fields |= row.from_wire(wire)
    # `model_validate`: pydantic coerces strings to AgentScope's enums exactly as it does
    # for events it parses itself.
    return row.cls.model_validate(fields)


def rebuild_reply(events: list[agent_pb2.AgentEvent]) -> Msg | None:
    """Rebuild the hosted agent's reply from wire events alone."""
    assembler = ReplyAssembler()
    for wire in events:
        decoded = decode_event(wire)
        if decoded is not None:
            assembler.apply(decoded)
    return assembler.root_reply
