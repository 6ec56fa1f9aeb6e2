"""meshscope.codec: reading wire events with no AgentScope, on hand-built streams."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from google.protobuf import struct_pb2

from meshscope import codec
from meshscope.v1 import agent_pb2, common_pb2
from meshscope.wire import text_of

R = "reply-1"


def numbered(events: list[agent_pb2.AgentEvent]) -> list[agent_pb2.AgentEvent]:
    for sequence, event in enumerate(events, start=1):
        event.sequence = sequence
        event.agent = event.agent or "analyst"
    return events


def without_piece_ids(message: common_pb2.Message) -> common_pb2.Message:
    """A copy without the ids of tool-result text pieces (each rebuild makes them: no event has them)."""
    copy = common_pb2.Message()
    copy.CopyFrom(message)
    for part in copy.parts:
        for piece in part.tool_result.output:
            piece.id = ""
    return copy


def a_turn() -> list[agent_pb2.AgentEvent]:
    """A reply with thinking, two text blocks, a tool call streamed in deltas, its result, usage."""
    event = agent_pb2.AgentEvent
    text, thinking = agent_pb2.BLOCK_KIND_TEXT, agent_pb2.BLOCK_KIND_THINKING
    metadata = struct_pb2.Struct()
    metadata.update({"ms": 3})
    return numbered(
        [
            event(
                reply_id=R,
                created_at_ms=1_795_946_400_123,  # 2026-11-29T10:00:00.123Z
                reply_start=agent_pb2.ReplyStart(
                    session_id="s", name="analyst", role=common_pb2.ROLE_ASSISTANT
                ),
            ),
            event(reply_id=R, model_call_start=agent_pb2.ModelCallStart(model_name="m")),
            event(reply_id=R, block_start=agent_pb2.BlockStart(block_id="t", kind=thinking)),
            event(reply_id=R, thinking_delta=agent_pb2.ThinkingDelta(block_id="t", delta="let me ")),
            event(reply_id=R, thinking_delta=agent_pb2.ThinkingDelta(block_id="t", delta="add")),
            event(reply_id=R, block_end=agent_pb2.BlockEnd(block_id="t", kind=thinking)),
            event(reply_id=R, block_start=agent_pb2.BlockStart(block_id="x", kind=text)),
            event(reply_id=R, text_delta=agent_pb2.TextDelta(block_id="x", delta="Adding ")),
            event(reply_id=R, text_delta=agent_pb2.TextDelta(block_id="x", delta="now.")),
            event(reply_id=R, block_end=agent_pb2.BlockEnd(block_id="x", kind=text)),
            event(reply_id=R, tool_call_start=agent_pb2.ToolCallStart(tool_call_id="c", name="add")),
            event(reply_id=R, tool_call_delta=agent_pb2.ToolCallDelta(tool_call_id="c", delta='{"a": 1,')),
            event(reply_id=R, tool_call_delta=agent_pb2.ToolCallDelta(tool_call_id="c", delta=' "b": 2}')),
            event(reply_id=R, tool_call_end=agent_pb2.ToolCallEnd(tool_call_id="c")),
            event(
                reply_id=R,
                model_call_end=agent_pb2.ModelCallEnd(
                    usage=common_pb2.Usage(input_tokens=7, output_tokens=3), finished_reason="completed"
                ),
            ),
            event(reply_id=R, tool_result_start=agent_pb2.ToolResultStart(tool_call_id="c", name="add")),
            event(
                reply_id=R,
                tool_result_delta=agent_pb2.ToolResultDelta(tool_call_id="c", part=common_pb2.Part(text="3")),
            ),
            event(
                reply_id=R,
                tool_result_end=agent_pb2.ToolResultEnd(
                    tool_call_id="c", state=common_pb2.TOOL_RESULT_STATE_SUCCESS, metadata=metadata
                ),
            ),
            event(reply_id=R, model_call_start=agent_pb2.ModelCallStart(model_name="m")),
            event(reply_id=R, block_start=agent_pb2.BlockStart(block_id="y", kind=text)),
            event(reply_id=R, text_delta=agent_pb2.TextDelta(block_id="y", delta="It is three")),
            event(reply_id=R, text_delta=agent_pb2.TextDelta(block_id="y", delta=", I think")),
            # The end restates the block's text (what was spoken): it replaces the deltas.
            event(reply_id=R, block_end=agent_pb2.BlockEnd(block_id="y", kind=text, text="It is three.")),
            event(
                reply_id=R,
                model_call_end=agent_pb2.ModelCallEnd(
                    usage=common_pb2.Usage(input_tokens=2, output_tokens=1, cache_input_tokens=5)
                ),
            ),
        ]
    )


def test_a_reply_is_rebuilt_part_by_part_from_its_events() -> None:
    rebuilt = codec.rebuild_reply(a_turn())
    assert rebuilt is not None
    assert (rebuilt.id, rebuilt.name, rebuilt.role) == (R, "analyst", common_pb2.ROLE_ASSISTANT)
    assert rebuilt.created_at == "2026-11-29T10:00:00.123Z"
    assert [(p.id, p.WhichOneof("kind")) for p in rebuilt.parts] == [
        ("t", "thinking"),
        ("x", "text"),
        ("c", "tool_call"),
        ("c", "tool_result"),
        ("y", "text"),
    ]
    thinking, first, call, result, second = rebuilt.parts
    assert thinking.thinking == "let me add"
    assert first.text == "Adding now."
    assert second.text == "It is three."
    assert (call.tool_call.id, call.tool_call.name) == ("c", "add")
    assert call.tool_call.input == '{"a": 1, "b": 2}'
    assert call.tool_call.state == common_pb2.TOOL_CALL_STATE_FINISHED  # its result ended it
    assert [o.text for o in result.tool_result.output] == ["3"]
    assert result.tool_result.state == common_pb2.TOOL_RESULT_STATE_SUCCESS
    assert codec.from_struct(result.tool_result.metadata) == {"ms": 3}
    assert rebuilt.usage == common_pb2.Usage(input_tokens=9, output_tokens=4, cache_input_tokens=5)
    assert rebuilt.finished_reason == ""  # no reply_end yet
    assert text_of(rebuilt) == "Adding now.It is three."


def test_the_final_message_comes_from_reply_end_and_matches_the_rebuilt_one() -> None:
    events = a_turn()
    sent = codec.rebuild_reply(events)
    assert sent is not None
    sent.finished_reason = "completed"
    end = agent_pb2.AgentEvent(
        reply_id=R, reply_end=agent_pb2.ReplyEnd(finished_reason="completed", message=sent)
    )
    events += numbered([end])
    reply = codec.Reply()
    for event in events:
        reply.add(event)
    assert reply.root_reply_id == R
    assert reply.message == sent
    assert reply.error is None
    assert reply.text == "Adding now.It is three."
    rebuilt = reply.rebuilt()
    assert rebuilt is not None
    assert without_piece_ids(rebuilt) == without_piece_ids(sent)


def test_an_error_mid_stream_leaves_what_was_said_and_the_error() -> None:
    events = a_turn()[:9]  # cut in the middle of the first text block
    error = agent_pb2.ErrorEvent(
        code="UNAVAILABLE",
        message="agent 'analyst': the model failed",
        retryable=True,
        reason=common_pb2.ERROR_REASON_MODEL_FAILURE,
    )
    events += numbered([agent_pb2.AgentEvent(reply_id=R, error=error)])
    reply = codec.Reply()
    builder = codec.ReplyBuilder()
    for event in events:
        reply.add(event)
        builder.add(event)
    assert reply.message is None
    assert reply.error == error
    assert builder.error == error
    assert reply.text == "Adding now."  # what streamed before the failure
    partial = builder.root_reply
    assert partial is not None
    assert [p.WhichOneof("kind") for p in partial.parts] == ["thinking", "text"]
    assert partial.parts[1].text == "Adding now."
    assert not partial.HasField("usage")  # no model call finished


def test_a_teams_member_replies_are_rebuilt_apart_from_the_root() -> None:
    event = agent_pb2.AgentEvent
    text = agent_pb2.BLOCK_KIND_TEXT
    events = [
        event(reply_id="root", reply_start=agent_pb2.ReplyStart(name="manager")),
        event(reply_id="member", reply_start=agent_pb2.ReplyStart(name="coder")),
        event(reply_id="root", block_start=agent_pb2.BlockStart(block_id="a", kind=text)),
        event(reply_id="member", block_start=agent_pb2.BlockStart(block_id="b", kind=text)),
        event(reply_id="member", text_delta=agent_pb2.TextDelta(block_id="b", delta="code")),
        event(reply_id="root", text_delta=agent_pb2.TextDelta(block_id="a", delta="plan")),
        event(reply_id="stray", text_delta=agent_pb2.TextDelta(block_id="a", delta="never started")),
    ]
    builder = codec.ReplyBuilder()
    for wire in events:
        builder.add(wire)
    assert [(m.name, text_of(m)) for m in builder.replies] == [("manager", "plan"), ("coder", "code")]
    assert builder.reply("stray") is None
    assert codec.streamed_text(events) == "plan"


def test_data_parts_join_their_bytes_and_a_url_replaces_them() -> None:
    event = agent_pb2.AgentEvent
    data = agent_pb2.BLOCK_KIND_DATA
    png = "image/png"
    events = [
        event(reply_id=R, reply_start=agent_pb2.ReplyStart(name="analyst")),
        event(
            reply_id=R,
            block_start=agent_pb2.BlockStart(block_id="d", kind=data, media_type=png, name="a.png"),
        ),
        event(reply_id=R, data_delta=agent_pb2.DataDelta(block_id="d", media_type=png, data=b"\x89PN")),
        event(reply_id=R, data_delta=agent_pb2.DataDelta(block_id="d", media_type=png, data=b"G")),
        event(reply_id=R, block_start=agent_pb2.BlockStart(block_id="u", kind=data, media_type=png)),
        event(
            reply_id=R,
            data_delta=agent_pb2.DataDelta(block_id="u", media_type=png, url="https://x/c.png"),
        ),
    ]
    rebuilt = codec.rebuild_reply(events)
    assert rebuilt is not None
    assert rebuilt.parts[0].data == common_pb2.DataPart(data=b"\x89PNG", media_type=png, name="a.png")
    assert rebuilt.parts[1].url == common_pb2.UrlPart(url="https://x/c.png", media_type=png)


def test_as_input_keeps_what_a_user_message_may_carry() -> None:
    reply = common_pb2.Message(
        role=common_pb2.ROLE_ASSISTANT,
        name="analyst",
        parts=[
            common_pb2.Part(thinking="hmm"),
            common_pb2.Part(text="mean is 2"),
            common_pb2.Part(tool_call=common_pb2.ToolCall(id="c", name="add")),
        ],
    )
    given = codec.as_input(reply)
    assert given.role == common_pb2.ROLE_USER and given.name == "analyst"
    assert [p.text for p in given.parts] == ["mean is 2"]
    only_calls = common_pb2.Message(parts=[common_pb2.Part(tool_call=common_pb2.ToolCall(id="c"))])
    assert [p.text for p in codec.as_input(only_calls).parts] == ["(no content)"]


def loaded_after_import(module: str, roots: tuple[str, ...]) -> list[str]:
    """The modules under `roots` that importing `module` loads, in a fresh interpreter."""
    probe = (
        f"import sys, {module}; "
        f"roots = {roots!r}; "
        "print(' '.join(sorted(m for m in sys.modules "
        "if any(m == r or m.startswith(r + '.') for r in roots))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_importing_the_codec_loads_neither_agentscope_nor_either_side_of_the_wire() -> None:
    assert (
        loaded_after_import("meshscope.codec", ("agentscope", "meshscope.services", "meshscope.orchestrator"))
        == []
    )


def test_the_agent_client_reads_replies_without_agentscope() -> None:
    """`AgentClient` collects a reply with the codec, so a client process never loads AgentScope."""
    assert loaded_after_import("meshscope.services.runtime.client", ("agentscope",)) == []


def test_a_name_table_reads_both_ways_and_refuses_a_value_twice() -> None:
    tables: tuple[codec.Names[Any], ...] = (codec.ROLES, codec.TOOL_CALL_STATES, codec.TOOL_RESULT_STATES)
    for table in tables:
        assert {table.name_of(value, "?") for value in table.values()} == set(table)
    assert codec.TOOL_RESULT_STATES["denied"] == common_pb2.TOOL_RESULT_STATE_DENIED
    assert codec.TOOL_RESULT_STATES.name_of(common_pb2.TOOL_RESULT_STATE_UNSPECIFIED, "success") == "success"
    with pytest.raises(ValueError, match="appears twice"):
        codec.Names({"user": common_pb2.ROLE_USER, "human": common_pb2.ROLE_USER})


def test_times_read_as_iso_8601_in_utc_to_the_millisecond() -> None:
    assert codec.iso_time(1_795_946_400_123) == "2026-11-29T10:00:00.123Z"
    assert codec.iso_time(1_795_946_400_000) == "2026-11-29T10:00:00.000Z"
    assert codec.iso_time(0) == ""  # unset


def test_a_stream_context_fills_in_what_events_leave_unsaid() -> None:
    """Empty reply id and agent: the last ones named; a delta's empty block id: the block named last."""
    event = agent_pb2.AgentEvent
    stream = [
        event(reply_id=R, agent="analyst", reply_start=agent_pb2.ReplyStart(name="analyst")),
        event(block_start=agent_pb2.BlockStart(block_id="x", kind=agent_pb2.BLOCK_KIND_TEXT)),
        event(text_delta=agent_pb2.TextDelta(delta="a")),
        event(reply_id="r2", agent="helper", text_delta=agent_pb2.TextDelta(block_id="y", delta="b")),
        event(thinking_delta=agent_pb2.ThinkingDelta(delta="c")),
        event(reply_id=R, agent="analyst", data_delta=agent_pb2.DataDelta(block_id="d", data=b"1")),
        event(block_end=agent_pb2.BlockEnd(block_id="x")),
        event(text_delta=agent_pb2.TextDelta(delta="e")),
    ]
    context = codec.StreamContext()
    seen = []
    for e in stream:
        kind = context.complete(e)
        block = getattr(e, str(kind)).block_id if kind != "reply_start" else ""
        seen.append((kind, e.reply_id, e.agent, block))
    assert seen == [
        ("reply_start", R, "analyst", ""),
        ("block_start", R, "analyst", "x"),
        ("text_delta", R, "analyst", "x"),
        ("text_delta", "r2", "helper", "y"),
        ("thinking_delta", "r2", "helper", "y"),
        ("data_delta", R, "analyst", "d"),
        ("block_end", R, "analyst", "x"),
        ("text_delta", R, "analyst", "x"),
    ]
