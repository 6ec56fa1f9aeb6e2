"""AgentScope events -> wire events -> the same reply, rebuilt by a receiver."""

from __future__ import annotations

import base64
from typing import Any

from agentscope import event as ev
from agentscope.agent import Agent, InjectionConfig, ReActConfig
from agentscope.message import TextBlock, ToolCallBlock, ToolResultState, UserMsg
from agentscope.tool import Toolkit

from meshscope import codec
from meshscope.codec import StreamContext, from_struct
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
    stream = StreamContext()
    assert all(stream.follow(w) and stream.agent == "analyst" for w in wire)


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
    decodes back to an equal event: all but the session id of a reply's end, the ids of deltas
    and the time (milliseconds since the epoch, for AgentScope's local-time string), which the
    wire does not carry."""
    encoder = EventEncoder("analyst")
    stream = StreamContext()
    round_trips = 0
    for event in every_kind_of_event():
        wire = encoder.encode(event)
        decoded = decode_event(wire, stream)
        if wire.HasField("custom"):
            assert decoded is None  # carried as JSON, for receivers to read as they like
            continue
        assert decoded is not None and type(decoded) is type(event)
        lossy = {"created_at"} | ({"session_id"} if isinstance(event, ev.ReplyEndEvent) else set())
        if "delta" in str(wire.WhichOneof("kind")):
            lossy.add("id")
        assert decoded.model_dump(exclude=lossy) == event.model_dump(exclude=lossy), event.type
        round_trips += 1
    assert round_trips == len(every_kind_of_event()) - 2


def test_events_name_only_what_changed_and_a_receiver_fills_in_the_rest() -> None:
    """Two replies of a team interleave, each with a text block "b": an event names its reply,
    agent and block only where they switch (a reply's start and end always), no delta carries
    an event id, and a receiver following the stream puts every delta where it belongs."""
    a, b = "reply-a", "reply-b"
    events = [
        ev.ReplyStartEvent(session_id="s", reply_id=a, name="manager"),
        ev.TextBlockStartEvent(reply_id=a, block_id="b"),
        ev.TextBlockDeltaEvent(reply_id=a, block_id="b", delta="one "),
        ev.ReplyStartEvent(session_id="s", reply_id=b, name="researcher"),
        ev.TextBlockStartEvent(reply_id=b, block_id="b"),
        ev.TextBlockDeltaEvent(reply_id=b, block_id="b", delta="inner"),
        ev.TextBlockDeltaEvent(reply_id=a, block_id="b", delta="two "),  # a's own "b"
        ev.ThinkingBlockStartEvent(reply_id=b, block_id="t"),
        ev.ThinkingBlockDeltaEvent(reply_id=b, block_id="t", delta="hmm"),
        ev.TextBlockDeltaEvent(reply_id=a, block_id="b", delta="three"),
        ev.ThinkingBlockDeltaEvent(reply_id=b, block_id="t", delta="!"),
        ev.ThinkingBlockEndEvent(reply_id=b, block_id="t"),
        ev.TextBlockEndEvent(reply_id=b, block_id="b"),
        ev.ReplyEndEvent(session_id="s", reply_id=b),
        ev.TextBlockEndEvent(reply_id=a, block_id="b"),
        ev.ReplyEndEvent(session_id="s", reply_id=a),
    ]
    encoder = EventEncoder("manager")
    wire = [encoder.encode(e) for e in events]

    def names(w: agent_pb2.AgentEvent) -> tuple[str, str, str, str]:
        kind = str(w.WhichOneof("kind"))
        block = getattr(w, kind).block_id if kind.endswith("_delta") else "-"
        return (w.reply_id[-1:], w.agent, kind, block)

    named = [names(w) for w in wire]
    assert named == [
        ("a", "manager", "reply_start", "-"),
        ("", "", "block_start", "-"),
        ("", "", "text_delta", ""),
        ("b", "researcher", "reply_start", "-"),
        ("", "", "block_start", "-"),
        ("", "", "text_delta", ""),
        ("a", "manager", "text_delta", ""),  # a's "b" is the block named last: not named again
        ("b", "researcher", "block_start", "-"),
        ("", "", "thinking_delta", ""),
        ("a", "manager", "text_delta", "b"),
        ("b", "researcher", "thinking_delta", "t"),
        ("", "", "block_end", "-"),
        ("", "", "block_end", "-"),
        ("b", "researcher", "reply_end", "-"),
        ("a", "manager", "block_end", "-"),
        ("a", "manager", "reply_end", "-"),
    ]
    assert all(not w.event_id for w in wire if "delta" in str(w.WhichOneof("kind")))
    assert all(w.event_id and w.created_at_ms for w in wire if "delta" not in str(w.WhichOneof("kind")))
    builder = codec.ReplyBuilder()
    for w in wire:
        builder.add(w)
    texts = {m.id: [(p.WhichOneof("kind"), p.text or p.thinking) for p in m.parts] for m in builder.replies}
    assert texts == {a: [("text", "one two three")], b: [("text", "inner"), ("thinking", "hmm!")]}
    ends = [w for w in wire if w.HasField("reply_end")]
    assert all(
        same_reply(builder.reply(w.reply_id) or common_pb2.Message(), w.reply_end.message) for w in ends
    )
    reply = codec.Reply()
    for w in wire:
        reply.add(w)
    assert [(e.reply_id[-1:], e.agent) for e in reply.events if e.HasField("text_delta")] == [
        ("a", "manager"),
        ("b", "researcher"),
        ("a", "manager"),
        ("a", "manager"),
    ]
    assert reply.text == "one two three"
    assert (rebuilt := rebuild_reply(wire)) is not None and rebuilt.get_text_content() == "one two three"
