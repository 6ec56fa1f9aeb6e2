"""Wire <-> AgentScope message conversion."""

from __future__ import annotations

import pytest
from agentscope.message import (
    AssistantMsg,
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

from meshscope.services.runtime.errors import InvalidInput
from meshscope.services.runtime.messages import message_to_msg, msg_to_message, wire_to_msg
from meshscope.v1 import common_pb2


def strip_times(value: object) -> object:
    """Drop timestamps (the wire carries the message's, not each block's)."""
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if k not in ("created_at", "finished_at")}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def full_reply() -> Msg:
    return AssistantMsg(
        name="analyst",
        content=[
            ThinkingBlock(id="t1", thinking="let me think"),
            TextBlock(id="x1", text="Hello"),
            ToolCallBlock(id="c1", name="add", input='{"a": 1}', state=ToolCallState.FINISHED),
            ToolResultBlock(
                id="c1",
                name="add",
                output=[TextBlock(id="o1", text="2")],
                state=ToolResultState.SUCCESS,
                metadata={"k": "v"},
            ),
            DataBlock(id="d1", source=Base64Source(data="aGVsbG8=", media_type="image/png"), name="p.png"),
            DataBlock(
                id="u1",
                source=URLSource.model_validate(
                    {"url": "https://example.com/a.png", "media_type": "image/png"}
                ),
            ),
            HintBlock(id="h1", hint="team says hi", source="coder"),
        ],
        metadata={"step": "analysis"},
        usage=Usage(input_tokens=3, output_tokens=5),
    )


def test_every_block_kind_survives_a_round_trip() -> None:
    original = full_reply()
    wire = msg_to_message(original)
    assert [p.WhichOneof("kind") for p in wire.parts] == [
        "thinking",
        "text",
        "tool_call",
        "tool_result",
        "data",
        "url",
        "hint",
    ]
    assert wire.parts[4].data.data == b"hello"
    back = wire_to_msg(wire)
    assert [strip_times(b.model_dump(mode="json")) for b in back.content] == [
        strip_times(b.model_dump(mode="json")) for b in original.content
    ]
    result = back.content[3]
    assert isinstance(result, ToolResultBlock)
    assert result.output[0].text == "2" and result.metadata == {"k": "v"}  # type: ignore[union-attr]
    assert back.usage == original.usage
    assert back.metadata == {"step": "analysis"}
    assert back.id == original.id and back.name == "analyst" and back.role == "assistant"


def test_input_message_becomes_a_user_msg() -> None:
    wire = common_pb2.Message(
        id="m1",
        parts=[
            common_pb2.Part(text="look at this"),
            common_pb2.Part(data=common_pb2.DataPart(data=b"\x89PNG", media_type="image/png")),
        ],
    )
    msg = message_to_msg(wire)
    assert msg.role == "user" and msg.name == "user" and msg.id == "m1"
    assert msg.get_text_content() == "look at this"
    data = msg.content[1]
    assert isinstance(data, DataBlock) and isinstance(data.source, Base64Source)
    assert data.source.data == "iVBORw=="


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (common_pb2.Message(), "input.parts"),
        (common_pb2.Message(role=common_pb2.ROLE_SYSTEM, parts=[common_pb2.Part(text="x")]), "input.role"),
        (common_pb2.Message(parts=[common_pb2.Part(thinking="x")]), "input.parts[0]"),
        (
            common_pb2.Message(parts=[common_pb2.Part(url=common_pb2.UrlPart(url="https://a.b/c"))]),
            "input.parts[0].url.media_type",
        ),
        (common_pb2.Message(id="i" * 300, parts=[common_pb2.Part(text="x")]), "input.id"),
    ],
)
def test_invalid_input_names_the_field(message: common_pb2.Message, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        message_to_msg(message)
    assert error.value.field == field
