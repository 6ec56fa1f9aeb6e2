"""Mapping AgentScope 2.x agent events onto the wire `AgentEvent`.

Every AgentScope event type has a wire form; the ones without a dedicated
message (human-in-the-loop requests, custom notifications) travel as a
`CustomEvent` carrying their JSON. The `ReplyAssembler` rebuilds each reply
from the events themselves, because AgentScope's final `Msg` only holds the
last model call's blocks; the rebuilt message rides on `reply_end`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentscope import event as ev
from agentscope.event import EventType
from agentscope.message import AssistantMsg, HintBlock, Msg, TextBlock

from meshscope.codec import (
    TOOL_RESULT_STATES,
    StreamContext,
    from_struct,
    iso_time,
    to_struct,
    usage_fields,
    usage_of,
)
from meshscope.services.runtime.errors import EventTooLarge, MeshError
from meshscope.services.runtime.messages import block_from_part, block_to_part, msg_to_message
from meshscope.v1 import agent_pb2, common_pb2

_TEXT_BLOCK_DELTA = EventType.TEXT_BLOCK_DELTA
_REPLY_START = EventType.REPLY_START
_ALWAYS_ADDRESSED = frozenset({EventType.REPLY_START, EventType.REPLY_END})
"""The events that always name their reply and agent (the orchestrator reads them there)."""
_DELTAS = frozenset(
    {
        EventType.TEXT_BLOCK_DELTA,
        EventType.THINKING_BLOCK_DELTA,
        EventType.DATA_BLOCK_DELTA,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_RESULT_TEXT_DELTA,
        EventType.TOOL_RESULT_DATA_DELTA,
    }
)
"""The events sent without their event id (nothing refers to a delta's)."""
_NAMING_BLOCK = frozenset(
    {
        EventType.TEXT_BLOCK_START,
        EventType.THINKING_BLOCK_START,
        EventType.DATA_BLOCK_START,
        EventType.TEXT_BLOCK_END,
        EventType.THINKING_BLOCK_END,
        EventType.DATA_BLOCK_END,
    }
)
"""The events that always name their block (a receiver's current block from then on)."""
_BLOCK_DELTAS = {EventType.THINKING_BLOCK_DELTA: "thinking_delta", EventType.DATA_BLOCK_DELTA: "data_delta"}
"""Besides text deltas (inlined), the deltas that leave out the block id of the current block."""


_DELTA_OVERHEAD = 64
"""Bytes of a text delta's event besides its text, when it names neither reply nor block: at
most 34 (sequence and time, 11 each; the delta's message and its text field, 6 each)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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

    def apply(self, event: Any, created_at: str | None = None) -> None:
        """Fold one AgentScope event into the reply it belongs to; a reply's start dates the
        reply with `created_at` (default: the event's own)."""
        reply_id = getattr(event, "reply_id", None)
        if reply_id is None:
            return
        if event.type == EventType.TEXT_BLOCK_DELTA:
            self.add_text(reply_id, event.block_id, event.delta)
            return
        self._flush_text(reply_id)
        if event.type == EventType.REPLY_START:
            # Dated as its start event goes on the wire, so a receiver rebuilding it gets the same time.
            self._replies[reply_id] = AssistantMsg(
                name=event.name, content=[], id=reply_id, created_at=created_at or event.created_at
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
    """Numbers and encodes the events of one Invoke stream.

    Each event carries only what a receiver could not infer from the ones before it (the rule
    on `AgentEvent` in agent.proto, read back by `meshscope.codec.StreamContext`): the reply id
    and agent when they change (always on a reply's start and end), a delta's block id when it
    is not the block named last, no event id on deltas; the time as Unix milliseconds.
    """

    def __init__(self, agent: str, max_bytes: int | None = None) -> None:
        self._agent = agent
        self._sequence = 0
        self._max_bytes = max_bytes
        self._small_delta = (max_bytes - _DELTA_OVERHEAD) // 4 if max_bytes is not None else 0
        """The longest text (in characters) a delta naming nothing else can carry within the
        limit whatever its characters (4 bytes each at most): such a delta is not measured."""
        self.assembler = ReplyAssembler()
        # What the receiver knows so far (the last of each it was sent).
        self._reply_id = ""
        self._author = ""
        self._block_id = ""

    @property
    def sent(self) -> int:
        """How many events were encoded so far."""
        return self._sequence

    def _address(self, out: agent_pb2.AgentEvent, reply_id: str, always: bool = False) -> None:
        """Name on `out` its reply and agent where the receiver could not infer them."""
        if reply_id and (always or reply_id != self._reply_id):
            out.reply_id = self._reply_id = reply_id
            author = self.assembler.authors.get(reply_id) or self._agent
        elif self._author:
            return  # no reply of its own: it reads as the current reply's, by the current agent
        else:
            author = self._agent  # the stream's first event names its agent
        if always or author != self._author:
            out.agent = self._author = author

    def encode(self, event: Any) -> agent_pb2.AgentEvent:
        """Fold `event` into its reply, then encode it for the wire."""
        reply_id = getattr(event, "reply_id", "") or ""
        self._sequence += 1
        if event.type == _TEXT_BLOCK_DELTA:
            # Most of a stream: set in place, with no dispatch, and joined into the
            # reply once per block rather than appended to it delta by delta.
            block_id, delta = event.block_id, event.delta
            self.assembler.add_text(reply_id, block_id, delta)
            out = agent_pb2.AgentEvent(sequence=self._sequence, created_at_ms=_now_ms())
            text_delta = out.text_delta
            named = False
            if reply_id != self._reply_id:
                self._address(out, reply_id)
                named = True
            if block_id != self._block_id:
                text_delta.block_id = self._block_id = block_id
                named = True
            text_delta.delta = delta
            if self._max_bytes is not None and (named or len(delta) > self._small_delta):
                self._check_size(out)
            return out
        ms = _now_ms()
        out = agent_pb2.AgentEvent(sequence=self._sequence, created_at_ms=ms)
        event_type = event.type
        # First: a reply's start names its author (and is dated as it goes on the wire).
        self.assembler.apply(event, iso_time(ms) if event_type == _REPLY_START else None)
        self._address(out, reply_id, event_type in _ALWAYS_ADDRESSED)
        if event_type not in _DELTAS:
            out.event_id = event.id
        _fill(out, event, self.assembler)
        if event_type in _NAMING_BLOCK:
            self._block_id = event.block_id
        else:
            delta_kind = _BLOCK_DELTAS.get(event_type)
            if delta_kind is not None:
                if event.block_id == self._block_id:
                    getattr(out, delta_kind).block_id = ""
                else:
                    self._block_id = event.block_id
        if self._max_bytes is not None:
            self._check_size(out)
        return out

    def _check_size(self, out: agent_pb2.AgentEvent) -> None:
        """Raise `EventTooLarge` before gRPC would refuse to send `out` (and end the call unexplained)."""
        assert self._max_bytes is not None
        size = out.ByteSize()
        if size > self._max_bytes:
            self._sequence -= 1  # never sent: the error event takes its place, leaving no gap
            # Nor is what it named known to the receiver: the error event names it all again.
            self._reply_id = self._author = self._block_id = ""
            kind = out.WhichOneof("kind")
            raise EventTooLarge(
                f"agent {self._agent!r}: its {kind} event is {size} bytes, over this server's message "
                f"limit of {self._max_bytes} bytes (MESHSCOPE_GRPC_MAX_MESSAGE_BYTES)"
            )

    def error(self, error: MeshError) -> agent_pb2.AgentEvent:
        """The terminal error event of a stream that fails with `error`: its code, message,
        retryability and reason (the same the stream's status then carries)."""
        self._sequence += 1
        out = agent_pb2.AgentEvent(sequence=self._sequence, created_at_ms=_now_ms())
        self._address(out, self.assembler.root_reply_id or "")
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


def decode_event(wire: agent_pb2.AgentEvent, stream: StreamContext) -> Any | None:
    """The AgentScope event a wire event carries (None for error/custom events).

    `stream` is the context of the event's stream (every event of the stream goes through
    here, in order): it gives back what the event left unsaid (its reply, a delta's block).
    With `rebuild_reply` this is the proof that the wire loses nothing: the receiver replays
    the events into an `AssistantMsg` exactly as the sender did.
    """
    kind = stream.follow(wire)
    decoded = _decode(wire, kind, stream)
    if decoded is not None:
        if wire.event_id:
            decoded.id = wire.event_id
        if wire.created_at_ms:
            decoded.created_at = iso_time(wire.created_at_ms)
    return decoded


def _decode(event: agent_pb2.AgentEvent, kind: str | None, stream: StreamContext) -> Any | None:
    rows = _BY_KIND.get(kind) if kind is not None else None
    if rows is None:
        return None
    wire = getattr(event, kind)  # type: ignore[arg-type]
    row = next(r for r in rows if r.matches is None or r.matches(wire))
    fields: dict[str, Any] = {"reply_id": stream.reply_id}
    for name, wire_name in row.fields:
        fields[name] = getattr(wire, wire_name)
    if kind in ("text_delta", "thinking_delta", "data_delta"):
        fields["block_id"] = stream.block_id
    if row.from_wire is not None:
        fields |= row.from_wire(wire)
    # `model_validate`: pydantic coerces strings to AgentScope's enums exactly as it does
    # for events it parses itself.
    return row.cls.model_validate(fields)


def rebuild_reply(events: list[agent_pb2.AgentEvent]) -> Msg | None:
    """Rebuild the hosted agent's reply from the wire events of one stream alone."""
    assembler = ReplyAssembler()
    stream = StreamContext()
    for wire in events:
        decoded = decode_event(wire, stream)
        if decoded is not None:
            assembler.apply(decoded)
    return assembler.root_reply
