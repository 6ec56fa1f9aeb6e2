"""Reading a stream of wire `AgentEvent`s, and the message conversions that need no AgentScope.

The agent side encodes AgentScope's events (`services/runtime/events.py`); everything a
receiver does with them lives here, beside the stubs, so the orchestrator, the bridge and any
client use one decoder without importing the agent side (or AgentScope, ~2 s to load):

- `StreamContext` fills in what an event leaves unsaid because the previous events of its
  stream said it (the wire rule on `AgentEvent`: reply id, agent, a delta's block id).
- `Reply` collects one `Invoke` stream as it arrives: its events (completed), the hosted agent's
  final message from `reply_end`, the `error` event if the stream failed, and its text.
- `ReplyBuilder` rebuilds every reply of a stream from its events alone, as a wire `Message`
  equal to the one its `reply_end` carries: text and thinking per block, data, tool calls (start,
  input deltas, end -> one `ToolCall` part with its whole input), tool results, hints, usage.
  For a receiver that shows a reply while it streams, or one whose stream broke before the end.
- `as_input` turns a reply into the next step's input; `to_struct`/`from_struct`, the usage
  fields and the role and state tables (`Names`: one table, read both ways) convert what both
  directions of the agent side's `messages.py` and `events.py` share.

Imports protobuf and the generated stubs only; `tests/unit/test_codec.py` checks that importing
this module loads no AgentScope.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2

from meshscope.v1 import agent_pb2, common_pb2
from meshscope.wire import text_of

V = TypeVar("V")


class Names(Mapping[str, V]):
    """A table between AgentScope's names and wire enum values, read both ways.

    As a mapping it goes name -> wire value (`TOOL_RESULT_STATES["success"]`, `.get(name,
    default)`); `name_of(value, default)` goes back. One table serves both directions, so
    the two cannot drift apart; every value appears once (ValueError otherwise).
    """

    __slots__ = ("_names", "_values")

    def __init__(self, values: Mapping[str, V]) -> None:
        self._values = dict(values)
        self._names = {value: name for name, value in self._values.items()}
        if len(self._names) != len(self._values):
            raise ValueError("a wire value appears twice: the table could not be read back")

    def __getitem__(self, name: str) -> V:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def name_of(self, value: V, default: str) -> str:
        """The AgentScope name of a wire `value`; `default` for one the table lacks (UNSPECIFIED)."""
        return self._names.get(value, default)


ROLES: Names[common_pb2.Role] = Names(
    {
        "user": common_pb2.ROLE_USER,
        "assistant": common_pb2.ROLE_ASSISTANT,
        "system": common_pb2.ROLE_SYSTEM,
    }
)
"""AgentScope's role names (A2A's "user"/"agent" map onto the first two) as wire roles, and back."""

TOOL_CALL_STATES: Names[common_pb2.ToolCallState] = Names(
    {
        "pending": common_pb2.TOOL_CALL_STATE_PENDING,
        "asking": common_pb2.TOOL_CALL_STATE_ASKING,
        "allowed": common_pb2.TOOL_CALL_STATE_ALLOWED,
        "submitted": common_pb2.TOOL_CALL_STATE_SUBMITTED,
        "finished": common_pb2.TOOL_CALL_STATE_FINISHED,
    }
)
"""AgentScope's tool-call state names as wire states, and back."""

TOOL_RESULT_STATES: Names[common_pb2.ToolResultState] = Names(
    {
        "running": common_pb2.TOOL_RESULT_STATE_RUNNING,
        "success": common_pb2.TOOL_RESULT_STATE_SUCCESS,
        "error": common_pb2.TOOL_RESULT_STATE_ERROR,
        "interrupted": common_pb2.TOOL_RESULT_STATE_INTERRUPTED,
        "denied": common_pb2.TOOL_RESULT_STATE_DENIED,
    }
)
"""AgentScope's tool-result state names as wire states, and back."""

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_input_tokens", "cache_creation_input_tokens")
"""The token counts of a wire `Usage`, named as AgentScope names them (its `Usage`, `ModelCallEndEvent`)."""


def to_struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    """A JSON-like mapping as a protobuf Struct (None for None or empty: the field stays unset)."""
    if not value:
        return None
    struct = struct_pb2.Struct()
    struct.update(dict(value))
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A protobuf Struct as a plain dict (numbers come back as floats: Struct stores doubles)."""
    return json_format.MessageToDict(struct)


def add_usage(total: common_pb2.Usage, usage: common_pb2.Usage) -> None:
    """Add `usage` (one model call's, or one reply's) into `total`, in place."""
    total.input_tokens += usage.input_tokens
    total.output_tokens += usage.output_tokens
    total.cache_input_tokens += usage.cache_input_tokens
    total.cache_creation_input_tokens += usage.cache_creation_input_tokens


def usage_of(source: Any) -> common_pb2.Usage:
    """A wire `Usage` from anything with AgentScope's token-count attributes (`USAGE_FIELDS`)."""
    return common_pb2.Usage(**{name: getattr(source, name) for name in USAGE_FIELDS})


def usage_fields(usage: common_pb2.Usage) -> dict[str, int]:
    """A wire `Usage` as AgentScope's token-count fields (`USAGE_FIELDS`), to build its objects from."""
    return {name: getattr(usage, name) for name in USAGE_FIELDS}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_time(ms: int) -> str:
    """An event's `created_at_ms` (Unix milliseconds) as ISO 8601 in UTC, e.g.
    "2026-11-29T10:00:00.123Z" (what a reply's `Message.created_at` holds); "" for 0 (unset)."""
    if not ms:
        return ""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_NAMES_BLOCK = frozenset({"block_start", "block_end", "text_delta", "thinking_delta", "data_delta"})
"""The kinds whose message has a `block_id`: the ones that name the stream's current block."""
_DELTAS_BLOCK = frozenset({"text_delta", "thinking_delta", "data_delta"})
"""The kinds whose `block_id` may be left empty (meaning the block named last)."""


class StreamContext:
    """What the events of one `Invoke` stream leave unsaid, as the events before them said it.

    An `AgentEvent` carries only what changed since the previous event of its stream (the rule
    on `AgentEvent` in agent.proto): an empty `reply_id` or `agent` means the last one set, an
    empty `block_id` on a text, thinking or data delta means the block named last. Feed every
    event of the stream to `follow`, in order; `reply_id`, `agent` and `block_id` are then the
    followed event's own. Within an orchestrated run, use one context per step.
    """

    __slots__ = ("agent", "block_id", "reply_id")

    def __init__(self) -> None:
        self.reply_id = ""
        """The reply the last followed event belongs to."""
        self.agent = ""
        """The agent that produced the last followed event."""
        self.block_id = ""
        """The block named last (by a block start or end, or a delta that named one)."""

    def follow(self, event: agent_pb2.AgentEvent) -> str | None:
        """Take the stream's next event; returns its kind (`WhichOneof("kind")`)."""
        if event.reply_id:
            self.reply_id = event.reply_id
        if event.agent:
            self.agent = event.agent
        kind: str | None = event.WhichOneof("kind")
        if kind in _NAMES_BLOCK:
            block_id: str = getattr(event, kind).block_id
            if block_id:
                self.block_id = block_id
        return kind

    def complete(self, event: agent_pb2.AgentEvent) -> str | None:
        """`follow`, then write into `event` what it left unsaid, so that it reads on its own."""
        kind = self.follow(event)
        event.reply_id = self.reply_id
        event.agent = self.agent
        if kind in _DELTAS_BLOCK:
            getattr(event, kind).block_id = self.block_id
        return kind


def as_input(message: common_pb2.Message) -> common_pb2.Message:
    """A reply as the next step's input: a user message with its text, data and url parts.

    An agent accepts only those kinds in a user message; a reply with none of them (only tool
    calls, say) travels as its text, or "(no content)".
    """
    parts = [p for p in message.parts if p.WhichOneof("kind") in ("text", "data", "url")]
    if not any(p.WhichOneof("kind") != "text" or p.text.strip() for p in parts):
        parts = [common_pb2.Part(text=text_of(message) or "(no content)")]
    return common_pb2.Message(role=common_pb2.ROLE_USER, name=message.name or "user", parts=parts)


def streamed_text(events: Iterable[agent_pb2.AgentEvent]) -> str:
    """The text deltas of the hosted agent's own reply (the first to start), joined.

    What a stream said before it ended without a `reply_end` (a team's members' replies,
    which stream in the same call under their own reply ids, are left out).
    """
    root: str | None = None
    pieces: list[str] = []
    stream = StreamContext()
    for event in events:
        kind = stream.follow(event)
        if root is None and kind == "reply_start":
            root = stream.reply_id
        elif kind == "text_delta" and stream.reply_id == root:
            pieces.append(event.text_delta.delta)
    return "".join(pieces)


@dataclass
class Reply:
    """One `Invoke` stream, collected as it arrives (feed each event to `add`).

    Cheap per event: it keeps the events, each completed with what the stream left unsaid
    (`StreamContext.complete`: every kept event names its reply, agent and block), and reads
    the root reply's id, its `reply_end` and an `error` event; `rebuilt()` replays the events
    when the parts are wanted.
    """

    events: list[agent_pb2.AgentEvent] = field(default_factory=list)
    message: common_pb2.Message | None = None
    """The hosted agent's complete reply, from its `reply_end` (None if the stream never got there)."""
    error: agent_pb2.ErrorEvent | None = None
    """The stream's terminal `error` event (code name, message, retryable, reason), if it failed."""
    root_reply_id: str | None = None
    """The id of the hosted agent's own reply: the first reply that started."""
    stream: StreamContext = field(default_factory=StreamContext)
    """What the events so far said (see `StreamContext`)."""

    def add(self, event: agent_pb2.AgentEvent) -> None:
        """Take the stream's next event (completed in place, see `StreamContext.complete`)."""
        kind = self.stream.complete(event)
        self.events.append(event)
        if kind == "reply_start":
            if self.root_reply_id is None:
                self.root_reply_id = event.reply_id
        elif kind == "reply_end":
            if event.reply_id == self.root_reply_id:
                self.message = event.reply_end.message
        elif kind == "error":
            self.error = event.error

    @property
    def text(self) -> str:
        """The reply's text: the final message's text parts, or what streamed before the end."""
        return text_of(self.message) if self.message is not None else streamed_text(self.events)

    def rebuilt(self) -> common_pb2.Message | None:
        """The hosted agent's reply rebuilt from the events so far (see `ReplyBuilder`)."""
        return rebuild_reply(self.events)


class _Building:
    """One reply under construction: its message and where each block's part sits."""

    __slots__ = ("blocks", "calls", "message", "results")

    def __init__(self, message: common_pb2.Message) -> None:
        self.message = message
        self.blocks: dict[str, common_pb2.Part] = {}
        """Text, thinking and data parts by block id."""
        self.calls: dict[str, common_pb2.ToolCall] = {}
        """Tool calls by call id."""
        self.results: dict[str, common_pb2.ToolResult] = {}
        """Tool results by the id of the call they answer."""

    def append(self, part: common_pb2.Part) -> common_pb2.Part:
        """Append a copy of `part`, returning the stored one (protobuf copies on append)."""
        self.message.parts.append(part)
        return self.message.parts[-1]


class ReplyBuilder:
    """Rebuilds every reply of one `Invoke` stream (a team streams several) from its wire events.

    Each reply becomes a wire `Message` equal to the one its `reply_end` carries, except the
    ids of tool-result text pieces, which no event carries (fresh ones are made, as the agent
    side does). Events of a reply that never started, and blocks that never started, are
    skipped; `custom` and `error` events carry no content. Text deltas are joined once per
    block when the reply is read, not appended one by one.
    """

    def __init__(self) -> None:
        self._replies: dict[str, _Building] = {}
        self._pending: dict[str, dict[str, list[str]]] = {}
        """Per reply, the text deltas of each block not yet folded into its part."""
        self.root_reply_id: str | None = None
        """The id of the hosted agent's own reply (the first that started)."""
        self.error: agent_pb2.ErrorEvent | None = None
        """The stream's terminal `error` event, if it carried one."""
        self.stream = StreamContext()
        """What the events so far said (see `StreamContext`)."""

    def add(self, event: agent_pb2.AgentEvent) -> None:
        """Fold the stream's next wire event into the reply it belongs to."""
        stream = self.stream
        kind = stream.follow(event)
        reply_id = stream.reply_id
        if kind == "text_delta":
            pending = self._pending.get(reply_id)
            if pending is not None:
                pending.setdefault(stream.block_id, []).append(event.text_delta.delta)
            return
        if kind == "error":
            self.error = event.error
            return
        if kind == "reply_start":
            start = event.reply_start
            message = common_pb2.Message(
                id=reply_id,
                role=start.role or common_pb2.ROLE_ASSISTANT,
                name=start.name,
                created_at=iso_time(event.created_at_ms),
            )
            self._replies[reply_id] = _Building(message)
            self._pending[reply_id] = {}
            if self.root_reply_id is None:
                self.root_reply_id = reply_id
            return
        building = self._replies.get(reply_id)
        if building is None or kind is None:
            return
        self._flush(reply_id)
        extend = _EXTEND.get(kind)
        if extend is not None:
            extend(building, event, stream.block_id)
        else:
            _APPLY.get(kind, _ignore)(building, event)

    def _flush(self, reply_id: str) -> None:
        pending = self._pending.get(reply_id)
        if not pending:
            return
        blocks = self._replies[reply_id].blocks
        for block_id, deltas in pending.items():
            part = blocks.get(block_id)
            if part is not None and part.WhichOneof("kind") == "text":
                part.text += "".join(deltas)
        pending.clear()

    def reply(self, reply_id: str) -> common_pb2.Message | None:
        """The reply `reply_id` rebuilt so far (None if it never started)."""
        building = self._replies.get(reply_id)
        if building is None:
            return None
        self._flush(reply_id)
        return building.message

    @property
    def root_reply(self) -> common_pb2.Message | None:
        """The hosted agent's own reply rebuilt so far."""
        return None if self.root_reply_id is None else self.reply(self.root_reply_id)

    @property
    def replies(self) -> list[common_pb2.Message]:
        """Every reply started so far, in the order they started."""
        return [message for reply_id in self._replies if (message := self.reply(reply_id)) is not None]


def rebuild_reply(events: Iterable[agent_pb2.AgentEvent]) -> common_pb2.Message | None:
    """The hosted agent's reply rebuilt from wire events alone (None if none started)."""
    builder = ReplyBuilder()
    for event in events:
        builder.add(event)
    return builder.root_reply


def _ignore(building: _Building, event: agent_pb2.AgentEvent) -> None:
    """Events that carry no content of the reply (model call start, custom)."""


def _block_start(building: _Building, event: agent_pb2.AgentEvent) -> None:
    start = event.block_start
    if start.kind == agent_pb2.BLOCK_KIND_TEXT:
        part = common_pb2.Part(id=start.block_id, text="")
    elif start.kind == agent_pb2.BLOCK_KIND_THINKING:
        part = common_pb2.Part(id=start.block_id, thinking="")
    else:
        data = common_pb2.DataPart(media_type=start.media_type, name=start.name)
        part = common_pb2.Part(id=start.block_id, data=data)
    building.blocks[start.block_id] = building.append(part)


def _thinking_delta(building: _Building, event: agent_pb2.AgentEvent, block_id: str) -> None:
    part = building.blocks.get(block_id)
    if part is not None and part.WhichOneof("kind") == "thinking":
        part.thinking += event.thinking_delta.delta


def _data_delta(building: _Building, event: agent_pb2.AgentEvent, block_id: str) -> None:
    delta = event.data_delta
    part = building.blocks.get(block_id)
    if part is None or part.WhichOneof("kind") not in ("data", "url"):
        return
    if delta.WhichOneof("source") == "url":
        # A URL is the whole content: it replaces the bytes the start made room for.
        name = part.data.name if part.WhichOneof("kind") == "data" else part.url.name
        part.url.CopyFrom(common_pb2.UrlPart(url=delta.url, media_type=delta.media_type, name=name))
    elif delta.data and part.WhichOneof("kind") == "data":
        part.data.data += delta.data


def _block_end(building: _Building, event: agent_pb2.AgentEvent) -> None:
    end = event.block_end
    part = building.blocks.get(end.block_id)
    # A text block's end may restate its text (e.g. cut to what was spoken): it wins.
    if part is not None and end.HasField("text") and part.WhichOneof("kind") == "text":
        part.text = end.text


def _tool_call_start(building: _Building, event: agent_pb2.AgentEvent) -> None:
    start = event.tool_call_start
    call = common_pb2.ToolCall(
        id=start.tool_call_id, name=start.name, state=common_pb2.TOOL_CALL_STATE_PENDING
    )
    building.calls[start.tool_call_id] = building.append(
        common_pb2.Part(id=start.tool_call_id, tool_call=call)
    ).tool_call


def _tool_call_delta(building: _Building, event: agent_pb2.AgentEvent) -> None:
    call = building.calls.get(event.tool_call_delta.tool_call_id)
    if call is not None:
        call.input += event.tool_call_delta.delta


def _tool_result_start(building: _Building, event: agent_pb2.AgentEvent) -> None:
    start = event.tool_result_start
    result = common_pb2.ToolResult(
        id=start.tool_call_id, name=start.name, state=common_pb2.TOOL_RESULT_STATE_RUNNING
    )
    building.results[start.tool_call_id] = building.append(
        common_pb2.Part(id=start.tool_call_id, tool_result=result)
    ).tool_result


def _tool_result_delta(building: _Building, event: agent_pb2.AgentEvent) -> None:
    delta = event.tool_result_delta
    result = building.results.get(delta.tool_call_id)
    if result is None:
        return
    if delta.part.WhichOneof("kind") == "text":
        output = result.output
        if output and output[-1].WhichOneof("kind") == "text":
            output[-1].text += delta.part.text
        else:  # a new text piece: its id is on no event, so it is made here (as the agent side does)
            output.append(common_pb2.Part(id=uuid.uuid4().hex, text=delta.part.text))
    else:
        result.output.append(delta.part)


def _tool_result_end(building: _Building, event: agent_pb2.AgentEvent) -> None:
    end = event.tool_result_end
    result = building.results.get(end.tool_call_id)
    if result is None:
        return
    result.state = end.state
    if end.HasField("metadata"):
        result.metadata.CopyFrom(end.metadata)
    call = building.calls.get(end.tool_call_id)
    if call is not None:  # a call's lifecycle ends with its result
        call.state = common_pb2.TOOL_CALL_STATE_FINISHED


def _hint(building: _Building, event: agent_pb2.AgentEvent) -> None:
    building.append(common_pb2.Part(id=event.hint.block_id, hint=event.hint.hint))


def _model_call_end(building: _Building, event: agent_pb2.AgentEvent) -> None:
    add_usage(building.message.usage, event.model_call_end.usage)  # sets the field on first use


def _reply_end(building: _Building, event: agent_pb2.AgentEvent) -> None:
    building.message.finished_reason = event.reply_end.finished_reason


_EXTEND = {"thinking_delta": _thinking_delta, "data_delta": _data_delta}
"""How a thinking or data delta extends its block (the stream's current block, see `StreamContext`)."""

_APPLY = {
    "block_start": _block_start,
    "block_end": _block_end,
    "tool_call_start": _tool_call_start,
    "tool_call_delta": _tool_call_delta,
    "tool_result_start": _tool_result_start,
    "tool_result_delta": _tool_result_delta,
    "tool_result_end": _tool_result_end,
    "hint": _hint,
    "model_call_end": _model_call_end,
    "reply_end": _reply_end,
}
"""How each kind of event (other than reply start, text deltas and errors) changes its reply."""
