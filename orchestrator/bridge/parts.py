"""A2A parts and messages to the mesh's and back, without loss.

A2A 1.0's `Part` is text, raw bytes, a URL or a JSON value (`data`), each with optional
`metadata`, `filename` and `media_type`. The mesh's `Part` (common.proto) has text, data
(bytes with a media type and a name), url, and the assistant-only kinds (tool call, tool
result, thinking, hint). The mapping:

  A2A text                      <-> mesh text
  A2A raw (bytes)               <-> mesh data (media type, name = filename)
  A2A url                       <-> mesh url (media type, name = filename)
  A2A data (a JSON value)       <-> mesh data, `application/json`, the value as JSON bytes, marked
                                    `meshscope.a2a: data` in the part's metadata so it comes back
                                    as a JSON value
  mesh thinking / hint          ->  A2A text, marked `meshscope.kind: thinking` / `hint`
  mesh tool call / tool result  ->  A2A data ({"id", "name", "input"} / {"id", "name", "output",
                                    "state"}), marked `meshscope.kind: tool_call` / `tool_result`

Part metadata travels both ways unchanged (the marker keys are added next to it). A text part
with a media type other than text/plain keeps it in `meshscope.media_type`.
"""

from __future__ import annotations

import json
from typing import Any

from a2a.types import a2a_pb2
from google.protobuf import json_format, struct_pb2

from meshscope.v1 import common_pb2

KIND_KEY = "meshscope.kind"
"""Part metadata key naming a mesh-only kind (thinking, hint, tool_call, tool_result)."""
A2A_KEY = "meshscope.a2a"
"""Part metadata key marking a mesh data part that was an A2A JSON `data` part."""
MEDIA_KEY = "meshscope.media_type"
JSON_MEDIA_TYPE = "application/json"


class PartError(ValueError):
    """A part the mesh cannot carry (an empty part, a JSON value that is not JSON); the message says which."""


def _metadata(part: a2a_pb2.Part) -> struct_pb2.Struct | None:
    return part.metadata if part.HasField("metadata") else None


def to_mesh_part(part: a2a_pb2.Part, index: int = 0) -> common_pb2.Part:
    """One A2A part as the mesh's; PartError for a part with no content."""
    kind = part.WhichOneof("content")
    out = common_pb2.Part()
    metadata = _metadata(part)
    if metadata is not None:
        out.metadata.CopyFrom(metadata)
    if kind == "text":
        out.text = part.text
        if part.media_type and part.media_type != "text/plain":
            out.metadata[MEDIA_KEY] = part.media_type
    elif kind == "raw":
        out.data.data = part.raw
        out.data.media_type = part.media_type or "application/octet-stream"
        out.data.name = part.filename
    elif kind == "url":
        out.url.url = part.url
        out.url.media_type = part.media_type
        out.url.name = part.filename
    elif kind == "data":
        value = json_format.MessageToDict(part.data)
        out.data.data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        out.data.media_type = JSON_MEDIA_TYPE
        out.data.name = part.filename
        out.metadata[A2A_KEY] = "data"
    else:
        raise PartError(f"part {index} has no content (text, raw, url or data)")
    return out


def _marked(out: a2a_pb2.Part, part: common_pb2.Part) -> a2a_pb2.Part:
    if part.HasField("metadata"):
        out.metadata.CopyFrom(part.metadata)
    return out


def _json_part(value: Any, kind: str, part: common_pb2.Part) -> a2a_pb2.Part:
    out = _marked(a2a_pb2.Part(), part)
    json_format.ParseDict(value, out.data)
    out.metadata[KIND_KEY] = kind
    return out


def to_a2a_part(part: common_pb2.Part) -> a2a_pb2.Part:
    """One mesh part as A2A's (every kind has a form; see the module docstring)."""
    kind = part.WhichOneof("kind")
    if kind == "text":
        out = _marked(a2a_pb2.Part(text=part.text), part)
        media = out.metadata.fields.pop(MEDIA_KEY, None) if out.HasField("metadata") else None
        if media is not None:
            out.media_type = media.string_value
        if out.HasField("metadata") and not out.metadata.fields:
            out.ClearField("metadata")
        return out
    if kind == "data":
        marker = part.metadata.fields.get(A2A_KEY) if part.HasField("metadata") else None
        if marker is not None and marker.string_value == "data":
            out = _marked(a2a_pb2.Part(filename=part.data.name), part)
            del out.metadata[A2A_KEY]
            if not out.metadata.fields:
                out.ClearField("metadata")
            try:
                json_format.ParseDict(json.loads(part.data.data), out.data)
            except (ValueError, json_format.ParseError):
                out.raw = part.data.data
                out.media_type = JSON_MEDIA_TYPE
            return out
        return _marked(
            a2a_pb2.Part(raw=part.data.data, media_type=part.data.media_type, filename=part.data.name), part
        )
    if kind == "url":
        return _marked(
            a2a_pb2.Part(url=part.url.url, media_type=part.url.media_type, filename=part.url.name), part
        )
    if kind in ("thinking", "hint"):
        text = part.thinking if kind == "thinking" else "".join(p.text for p in part.hint.content)
        out = _marked(a2a_pb2.Part(text=text), part)
        out.metadata[KIND_KEY] = kind
        return out
    if kind == "tool_call":
        call = part.tool_call
        return _json_part({"id": call.id, "name": call.name, "input": call.input}, "tool_call", part)
    if kind == "tool_result":
        result = part.tool_result
        output = [json_format.MessageToDict(to_a2a_part(p)) for p in result.output]
        state = common_pb2.ToolResultState.Name(result.state) if result.state else ""
        return _json_part(
            {"id": result.id, "name": result.name, "output": output, "state": state}, "tool_result", part
        )
    return _marked(a2a_pb2.Part(text=""), part)


def to_mesh_message(message: a2a_pb2.Message) -> common_pb2.Message:
    """An A2A user message as the run's input; PartError when it has no usable part."""
    if not message.parts:
        raise PartError("the message has no parts")
    out = common_pb2.Message(
        id=message.message_id,
        role=common_pb2.ROLE_USER,
        name="user",
        parts=[to_mesh_part(p, i) for i, p in enumerate(message.parts)],
    )
    if message.HasField("metadata"):
        out.metadata.CopyFrom(message.metadata)
    return out


def to_a2a_message(
    message: common_pb2.Message, *, task_id: str, context_id: str, message_id: str | None = None
) -> a2a_pb2.Message:
    """A mesh reply as an A2A agent message of `task_id` in `context_id`."""
    out = a2a_pb2.Message(
        message_id=message_id or message.id,
        context_id=context_id,
        task_id=task_id,
        role=a2a_pb2.ROLE_AGENT if message.role != common_pb2.ROLE_USER else a2a_pb2.ROLE_USER,
        parts=[to_a2a_part(p) for p in message.parts],
    )
    if message.HasField("metadata"):
        out.metadata.CopyFrom(message.metadata)
    if message.name:
        out.metadata["meshscope.name"] = message.name
    return out
