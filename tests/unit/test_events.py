"""AgentScope events -> wire events -> the same reply, rebuilt by a receiver."""

from __future__ import annotations

import base64
from typing import Any

from agentscope import event as ev
from agentscope.agent import Agent, InjectionConfig, ReActConfig
from agentscope.message import TextBlock, ToolCallBlock, ToolResultState, UserMsg
from agentscope.tool import Toolkit

from meshscope import codec
from meshscope.codec import from_struct
from meshscope.services.analyst import summarize_numbers
from meshscope.services.runtime.events import EventEncoder, decode_event, rebuild_reply
from meshscope.services.runtime.messages import msg_to_message
from meshscope.services.runtime.models import ScriptedChatModel
from meshscope.services.runtime.tools import allowed_tool
from meshscope.v1 import agent_pb2, common_pb2


def same_reply(received: common_pb2.Message, sent: common_pb2.Message) -> bool:
    """Equal, except the ids AgentScope invents for tool-result text pieces.

    `Msg.append_event` gives each streamed tool-result text a fresh random id
    that no event carries, on the sender and the receiver alike.
    """
    copies = []
    for original in (received, sent):
        copy = common_pb2.Message()
        copy.CopyFrom(original)
        copies.append(copy)
    received, sent = copies
    for message in copies:
        for part in message.parts:
            for piece in part.tool_result.output:
                if piece.WhichOneof("kind") == "text":
                    piece.id = ""
    return received == sent


def every_kind_of_event() -> list[Any]:
    r = "reply-1"
    png = base64.b64encode(b"\x89PNG-bytes").decode()
    return [
        ev.ReplyStartEvent(session_id="s", reply_id=r, name="analyst"),
        ev.ModelCallStartEvent(reply_id=r, model_name="m"),
        ev.ThinkingBlockStartEvent(reply_id=r, block_id="t"),
        ev.ThinkingBlockDeltaEvent(reply_id=r, block_id="t", delta="hmm "),
        ev.ThinkingBlockDeltaEvent(reply_id=r, block_id="t", delta="ok"),
        ev.ThinkingBlockEndEvent(reply_id=r, block_id="t"),
        ev.TextBlockStartEvent(reply_id=r, block_id="x"),
        ev.TextBlockDeltaEvent(reply_id=r, block_id="x", delta="Hello"),
        ev.TextBlockDeltaEvent(reply_id=r, block_id="x", delta=" there"),
        ev.TextBlockEndEvent(reply_id=r, block_id="x"),
        ev.TextBlockStartEvent(reply_id=r, block_id="v"),
        ev.TextBlockDeltaEvent(reply_id=r, block_id="v", delta="spoken words cut"),
        ev.TextBlockEndEvent(reply_id=r, block_id="v", text="spoken"),
        ev.DataBlockStartEvent(reply_id=r, block_id="d", media_type="image/png", name="a.png"),
        ev.DataBlockDeltaEvent(reply_id=r, block_id="d", media_type="image/png", data=png),
        ev.DataBlockEndEvent(reply_id=r, block_id="d"),
        ev.ToolCallStartEvent(reply_id=r, tool_call_id="c", tool_call_name="add"),
        ev.ToolCallDeltaEvent(reply_id=r, tool_call_id="c", delta='{"a":'),
        ev.ToolCallDeltaEvent(reply_id=r, tool_call_id="c", delta=" 1}"),
        ev.ToolCallEndEvent(reply_id=r, tool_call_id="c"),
        ev.ModelCallEndEvent(reply_id=r, input_tokens=7, output_tokens=3),
        ev.ToolResultStartEvent(reply_id=r, tool_call_id="c", tool_call_name="add"),
        ev.ToolResultTextDeltaEvent(reply_id=r, tool_call_id="c", delta="1"),
        ev.ToolResultDataDeltaEvent(
            reply_id=r,
            tool_call_id="c",
            block_id="img",
            media_type="image/png",
            url="https://example.com/chart.png",
        ),
        ev.ToolResultEndEvent(
            reply_id=r, tool_call_id="c", state=ToolResultState.SUCCESS, metadata={"ms": 3}
        ),
        ev.HintBlockEvent(reply_id=r, block_id="h", source="coder", hint="done on my side"),
        ev.RequireUserConfirmEvent(reply_id=r, tool_calls=[ToolCallBlock(id="c2", name="rm", input="{}")]),
        ev.CustomEvent(name="state_updated", value={"tasks": 2}),
        ev.ModelCallEndEvent(reply_id=r, input_tokens=2, output_tokens=1),
        ev.ReplyEndEvent(session_id="s", reply_id=r),
    ]


def test_every_event_kind_has_a_wire_form_and_sequence_numbers() -> None:
    encoder = EventEncoder("analyst")
    wire = [encoder.encode(e) for e in every_kind_of_event()]
    assert [w.sequence for w in wire] == list(range(1, len(wire) + 1))
    kinds = {str(w.WhichOneof("kind")) for w in wire}
    assert kinds == {
        "reply_start",
        "model_call_start",
        "block_start",
        "thinking_delta",
        "block_end",
        "text_delta",
        "data_delta",
        "tool_call_start",
        "tool_call_delta",
        "tool_call_end",
        "model_call_end",
        "tool_result_start",
        "tool_result_delta",
        "tool_result_end",
        "hint",
        "custom",
        "reply_end",
    }
    confirm = next(w for w in wire if w.HasField("custom") and w.custom.name == "REQUIRE_USER_CONFIRM")
    assert from_struct(confirm.custom.value)["tool_calls"][0]["name"] == "rm"
    custom = next(w for w in wire if w.HasField("custom") and w.custom.name == "state_updated")
    assert from_struct(custom.custom.value) == {"tasks": 2}
    data = next(w for w in wire if w.HasField("data_delta"))
    assert data.data_delta.data == b"\x89PNG-bytes"
    assert all(w.agent == "analyst" for w in wire)


def test_a_receiver_rebuilds_the_reply_end_message_from_the_events_alone() -> None:
    encoder = EventEncoder("analyst")
    wire = [encoder.encode(e) for e in every_kind_of_event()]
    sent = wire[-1].reply_end.message
    rebuilt = rebuild_reply(wire)
    assert rebuilt is not None
    assert [p.WhichOneof("kind") for p in sent.parts] == [
        "thinking",
        "text",
        "text",
        "data",
        "tool_call",
        "tool_result",
        "hint",
    ]
    assert sent.parts[2].text == "spoken"  # the end event's text replaced the deltas
    assert sent.usage.input_tokens == 9 and sent.usage.output_tokens == 4
    assert same_reply(msg_to_message(rebuilt), sent)
    # A receiver without AgentScope (the orchestrator, the bridge) rebuilds the same message.
    rebuilt_on_the_wire = codec.rebuild_reply(wire)
    assert rebuilt_on_the_wire is not None
    assert same_reply(rebuilt_on_the_wire, sent)


async def test_a_real_agent_turn_survives_the_wire() -> None:
    model = ScriptedChatModel(persona="analyst")
    agent = Agent(
        name="analyst",
        system_prompt="analyse",
        model=model,
        toolkit=Toolkit(tools=[allowed_tool(summarize_numbers)]),
        react_config=ReActConfig(interruption_raise_cancelled_error=True),
        injection_config=InjectionConfig(inject_runtime_state=False),
    )
    encoder = EventEncoder("analyst")
    wire: list[agent_pb2.AgentEvent] = []
    async for item in agent.reply_stream(UserMsg(name="user", content="numbers please #tool")):
        wire.append(encoder.encode(item))
    final = wire[-1].reply_end.message
    # AgentScope's own final Msg would hold only the last model call; ours holds all of it.
    assert [p.WhichOneof("kind") for p in final.parts] == ["tool_call", "tool_result", "text"]
    rebuilt = rebuild_reply(wire)
    assert rebuilt is not None
    assert same_reply(msg_to_message(rebuilt), final)
    assert isinstance(rebuilt.content[-1], TextBlock)
    rebuilt_on_the_wire = codec.rebuild_reply(wire)
    assert rebuilt_on_the_wire is not None
    assert same_reply(rebuilt_on_the_wire, final)


def test_every_event_with_a_wire_form_reads_back_as_itself() -> None:
    """One table drives both directions: each event the encoder gives a wire form of its own
    decodes back to an equal event (the wire carries no session id on a reply's end)."""
    encoder = EventEncoder("analyst")
    round_trips = 0
    for event in every_kind_of_event():
        wire = encoder.encode(event)
        decoded = decode_event(wire)
        if wire.HasField("custom"):
            assert decoded is None  # carried as JSON, for receivers to read as they like
            continue
        assert decoded is not None and type(decoded) is type(event)
        lossy = {"session_id"} if isinstance(event, ev.ReplyEndEvent) else set()
        assert decoded.model_dump(exclude=lossy) == event.model_dump(exclude=lossy), event.type
        round_trips += 1
    assert round_trips == len(every_kind_of_event()) - 2
