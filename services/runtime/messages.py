"""Conversion between the wire `Message`/`Part` and AgentScope's `Msg`/blocks.

Both directions are total for every block kind AgentScope has, so a message
survives a round trip through the mesh unchanged (except that protobuf
`Struct` metadata stores numbers as doubles). Only what needs AgentScope's
types lives here; the tables of role and state names and the `Struct`
helpers both directions share are in `meshscope.codec`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from agentscope.message import (
    Base64Source,
    DataBlock,
    HintBlock,
    Msg,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolCallState,
    ToolResultBlock,
    ToolResultState,
    URLSource,
    Usage,
)
from pydantic import ValidationError

from meshscope.codec import (
    ROLES,
    TOOL_CALL_STATES,
    TOOL_RESULT_STATES,
    from_struct,
    to_struct,
    usage_fields,
    usage_of,
)
from meshscope.services.runtime.errors import InvalidInput
from meshscope.v1 import common_pb2

MAX_ID_LENGTH = 256


def _id_of(part: common_pb2.Part) -> str:
    """The part's id, or a fresh one (AgentScope's blocks always carry an id)."""
    return part.id or uuid.uuid4().hex


def usage_to_wire(usage: Usage | None) -> common_pb2.Usage | None:
    """AgentScope usage as the wire `Usage` (None when absent)."""
    return None if usage is None else usage_of(usage)


def _media_part(block: DataBlock) -> common_pb2.Part:
    source = block.source
    part = common_pb2.Part(id=block.id)
    if isinstance(source, URLSource):
        part.url.CopyFrom(
            common_pb2.UrlPart(url=str(source.url), media_type=source.media_type, name=block.name or "")
        )
    else:
        part.data.CopyFrom(
            common_pb2.DataPart(
                data=base64.b64decode(source.data) if source.data else b"",
                media_type=source.media_type,
                name=block.name or "",
            )
        )
    return part


def _content_parts(content: str | list[TextBlock | DataBlock]) -> list[common_pb2.Part]:
    # A plain-string content travels as one text part without an id, so the
    # receiver can restore the string form (see `_content_from_parts`).
    if isinstance(content, str):
        return [common_pb2.Part(text=content)]
    return [block_to_part(block) for block in content]


def _content_from_parts(parts: Sequence[common_pb2.Part], field: str) -> str | list[Any]:
    if len(parts) == 1 and not parts[0].id and parts[0].WhichOneof("kind") == "text":
        return parts[0].text
    return [part_to_block(p, f"{field}[{i}]", user=True) for i, p in enumerate(parts)]


def block_to_part(block: Any) -> common_pb2.Part:
    """One AgentScope content block as a wire `Part`."""
    if isinstance(block, TextBlock):
        return common_pb2.Part(id=block.id, text=block.text)
    if isinstance(block, ThinkingBlock):
        return common_pb2.Part(id=block.id, thinking=block.thinking)
    if isinstance(block, DataBlock):
        return _media_part(block)
    if isinstance(block, ToolCallBlock):
        return common_pb2.Part(
            id=block.id,
            tool_call=common_pb2.ToolCall(
                id=block.id,
                name=block.name,
                input=block.input,
                state=TOOL_CALL_STATES.get(str(block.state), common_pb2.TOOL_CALL_STATE_UNSPECIFIED),
            ),
        )
    if isinstance(block, ToolResultBlock):
        result = common_pb2.ToolResult(
            id=block.id,
            name=block.name,
            output=_content_parts(block.output),
            state=TOOL_RESULT_STATES.get(str(block.state), common_pb2.TOOL_RESULT_STATE_UNSPECIFIED),
        )
        metadata = to_struct(block.metadata)
        if metadata is not None:
            result.metadata.CopyFrom(metadata)
        return common_pb2.Part(id=block.id, tool_result=result)
    if isinstance(block, HintBlock):
        return common_pb2.Part(
            id=block.id,
            hint=common_pb2.Hint(source=block.source or "", content=_content_parts(block.hint)),
        )
    raise TypeError(f"unsupported AgentScope block {type(block).__name__}")


def msg_to_message(msg: Msg) -> common_pb2.Message:
    """An AgentScope `Msg` as a wire `Message`."""
    message = common_pb2.Message(
        id=msg.id,
        role=ROLES[msg.role],
        name=msg.name,
        parts=[block_to_part(block) for block in msg.content],
        created_at=msg.created_at,
        finished_reason=str(msg.finished_reason or ""),
    )
    metadata = to_struct(msg.metadata)
    if metadata is not None:
        message.metadata.CopyFrom(metadata)
    usage = usage_to_wire(msg.usage)
    if usage is not None:
        message.usage.CopyFrom(usage)
    return message


def _check_url(url: str, field: str) -> str:
    parsed = urlparse(url)
    if not parsed.scheme or not (parsed.netloc or parsed.scheme == "data"):
        shown = url if len(url) <= 80 else f"{url[:80]}... ({len(url)} characters)"
        raise InvalidInput(field, f"must be an absolute URL, got {shown!r}")
    return url


def _media_block(part: common_pb2.Part, field: str) -> DataBlock:
    if part.WhichOneof("kind") == "data":
        if not part.data.media_type:
            raise InvalidInput(f"{field}.data.media_type", "is required")
        return DataBlock(
            id=_id_of(part),
            source=Base64Source(
                data=base64.b64encode(part.data.data).decode("ascii"),
                media_type=part.data.media_type,
            ),
            name=part.data.name or None,
        )
    if not part.url.media_type:
        raise InvalidInput(f"{field}.url.media_type", "is required")
    url = _check_url(part.url.url, f"{field}.url.url")
    try:
        source = URLSource.model_validate({"url": url, "media_type": part.url.media_type})
    except ValidationError as exc:
        raise InvalidInput(f"{field}.url.url", f"is not a valid URL: {exc.errors()[0]['msg']}") from exc
    return DataBlock(id=_id_of(part), source=source, name=part.url.name or None)


def part_to_block(part: common_pb2.Part, field: str, *, user: bool) -> Any:
    """One wire `Part` as an AgentScope block.

    `user` restricts the part to what AgentScope accepts in a user message
    (text, data, url); `field` names the part in error messages.
    """
    kind = part.WhichOneof("kind")
    if kind is None:
        raise InvalidInput(field, "no content: set one of text, data, url")
    if kind == "text":
        return TextBlock(text=part.text, id=_id_of(part))
    if kind in ("data", "url"):
        return _media_block(part, field)
    if user:
        raise InvalidInput(field, f"a user message may carry only text, data and url parts, not {kind}")
    if kind == "thinking":
        return ThinkingBlock(thinking=part.thinking, id=_id_of(part))
    if kind == "tool_call":
        call = part.tool_call
        return ToolCallBlock(
            id=call.id or part.id,
            name=call.name,
            input=call.input,
            state=ToolCallState(TOOL_CALL_STATES.name_of(call.state, "pending")),
        )
    if kind == "tool_result":
        result = part.tool_result
        return ToolResultBlock(
            id=result.id or part.id,
            name=result.name,
            output=_content_from_parts(result.output, f"{field}.tool_result.output"),
            state=ToolResultState(TOOL_RESULT_STATES.name_of(result.state, "running")),
            metadata=from_struct(result.metadata),
        )
    hint = part.hint
    return HintBlock(
        hint=_content_from_parts(hint.content, f"{field}.hint.content"),
        source=hint.source or None,
        id=_id_of(part),
    )


def block_from_part(part: common_pb2.Part) -> Any:
    """Any wire part (any role) as an AgentScope block."""
    return part_to_block(part, "part", user=False)


def message_to_msg(message: common_pb2.Message, field: str = "input") -> Msg:
    """A wire `Message` sent as a turn's input, as an AgentScope user `Msg`.

    Raises `InvalidInput` naming the first offending field.
    """
    if message.role not in (common_pb2.ROLE_UNSPECIFIED, common_pb2.ROLE_USER):
        raise InvalidInput(f"{field}.role", "an input message must have ROLE_USER")
    if not message.parts:
        raise InvalidInput(f"{field}.parts", "must contain at least one part")
    if len(message.id) > MAX_ID_LENGTH:
        raise InvalidInput(f"{field}.id", f"must be at most {MAX_ID_LENGTH} characters")
    blocks = [part_to_block(p, f"{field}.parts[{i}]", user=True) for i, p in enumerate(message.parts)]
    if not any(not isinstance(b, TextBlock) or b.text.strip() for b in blocks):
        raise InvalidInput(f"{field}.parts", "all text parts are empty")
    fields: dict[str, Any] = {
        "name": message.name or "user",
        "content": blocks,
        "role": "user",
        "metadata": from_struct(message.metadata),
    }
    if message.id:
        fields["id"] = message.id
    if message.created_at:
        fields["created_at"] = message.created_at
    return Msg(**fields)


def wire_to_msg(message: common_pb2.Message) -> Msg:
    """Any wire `Message` (e.g. a previous step's reply) as an AgentScope `Msg`."""
    role = ROLES.name_of(message.role, "user")
    msg = Msg.model_validate(
        {
            "name": message.name or role,
            "content": [part_to_block(p, f"parts[{i}]", user=False) for i, p in enumerate(message.parts)],
            "role": role,
            "metadata": from_struct(message.metadata),
            "id": message.id or uuid.uuid4().hex,
        }
    )
    if message.HasField("usage"):
        msg.usage = Usage(**usage_fields(message.usage))
    return msg
