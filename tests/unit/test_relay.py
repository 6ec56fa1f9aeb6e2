"""The orchestrator relays agent events undecoded: what it sends is byte for byte the RunEvent it
would have built from the decoded AgentEvent, for every kind of event (meshscope/v1/relay.proto)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from meshscope.discovery.model import Instance
from meshscope.orchestrator.calls import StepEvent, StepFailed, head
from meshscope.orchestrator.pipelines import parse_mesh
from meshscope.orchestrator.pool import Endpoint, EndpointPool
from meshscope.orchestrator.runs import Run, Runner, encoded
from meshscope.v1 import agent_pb2, common_pb2, orchestrator_pb2, relay_pb2
from meshscope.wire import user_message

KINDS = [f.name for f in agent_pb2.AgentEvent.DESCRIPTOR.oneofs_by_name["kind"].fields]


def _filled(message: Message) -> None:
    """Give every scalar field of `message` (and of its direct sub-messages) a non-default value."""
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated:
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, f"{field.name} ✓")
        elif field.type == FieldDescriptor.TYPE_BYTES:
            setattr(message, field.name, b"\x00\xff")
        elif field.type == FieldDescriptor.TYPE_BOOL:
            setattr(message, field.name, True)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            setattr(message, field.name, field.enum_type.values[-1].number)
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            setattr(message, field.name, 1.5)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.containing_oneof is None or message.WhichOneof(field.containing_oneof.name) is None:
                getattr(message, field.name).SetInParent()
        else:
            setattr(message, field.name, 3)


def an_event(kind: str, *, agent: str = "member") -> agent_pb2.AgentEvent:
    """An AgentEvent of `kind` with every envelope field and its payload's fields set."""
    event = agent_pb2.AgentEvent(
        sequence=7, event_id="e1", reply_id="r1", created_at_ms=1_796_000_000_000, agent=agent
    )
    payload = getattr(event, kind)
    payload.SetInParent()
    _filled(payload)
    if kind == "reply_end":
        event.reply_end.message.CopyFrom(user_message("the reply"))
        event.reply_end.message.usage.CopyFrom(common_pb2.Usage(input_tokens=3, output_tokens=5))
    return event


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    pool = EndpointPool()  # its channel is never connected: only the replica id is read
    pool.update("analyst", [Instance("analyst", "analyst@h:1", "127.0.0.1", 1)])
    (found,) = pool.endpoints("analyst")
    yield found
    await pool.close()


def a_run() -> Run:
    request = orchestrator_pb2.RunRequest(target="analyst", input=user_message("hi"))
    return Run(request=request, deadline=time.monotonic() + 30)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("agent", ["member", ""])
async def test_a_relayed_event_is_the_run_event_the_decoded_path_built(
    kind: str, agent: str, endpoint: Endpoint
) -> None:
    event = an_event(kind, agent=agent)
    raw = event.SerializeToString()
    runner = Runner(EndpointPool(), parse_mesh("agents: [analyst]", "m"))
    run = a_run()
    relayed = run.numbered(
        runner._relayed("step:a", "analyst", event.agent or "analyst", StepEvent(endpoint, raw, head(raw)))
    )
    # What the orchestrator sent before it relayed undecoded: a RunEvent around the decoded event.
    before = orchestrator_pb2.RunEvent(
        sequence=1,
        run_id=run.run_id,
        step="step:a",
        agent=event.agent or "analyst",
        replica="analyst@h:1",
        agent_event=agent_pb2.AgentEvent.FromString(raw),
    )
    assert encoded(relayed) == before.SerializeToString()
    assert orchestrator_pb2.RunEvent.FromString(encoded(relayed)) == before


@pytest.mark.parametrize("kind", KINDS)
def test_the_head_reads_what_the_orchestrator_acts_on_and_nothing_else(kind: str) -> None:
    event = an_event(kind)
    found = head(event.SerializeToString())
    assert (found.reply_id, found.agent) == ("r1", "member")
    acted_on = {"reply_start", "reply_end"}
    assert found.WhichOneof("kind") == (kind if kind in acted_on else None)
    if kind == "reply_end":
        assert found.reply_end == event.reply_end


def test_an_empty_agent_event_is_still_relayed_as_one() -> None:
    relayed = relay_pb2.RelayedRunEvent(step="s", agent_event=b"")
    assert orchestrator_pb2.RunEvent.FromString(encoded(relayed)).HasField("agent_event")


def test_bytes_that_are_not_an_event_fail_the_step_as_internal() -> None:
    with pytest.raises(StepFailed) as failed:
        head(b"\x1a\x05ab")  # reply_id's length runs past the end
    assert failed.value.reason == common_pb2.ERROR_REASON_INTERNAL


@pytest.mark.parametrize(
    ("internal", "public"),
    [
        (relay_pb2.AgentEventHead, agent_pb2.AgentEvent),
        (relay_pb2.RelayedRunEvent, orchestrator_pb2.RunEvent),
    ],
)
def test_the_relay_messages_keep_the_public_ones_numbers(
    internal: type[Message], public: type[Message]
) -> None:
    """A change of AgentEvent's or RunEvent's numbers must come here too, or the relay would misread."""
    wire_types = {FieldDescriptor.TYPE_BYTES: "len", FieldDescriptor.TYPE_MESSAGE: "len"}
    for field in internal.DESCRIPTOR.fields:
        theirs = public.DESCRIPTOR.fields_by_name[field.name]
        assert field.number == theirs.number, field.name
        assert wire_types.get(field.type, field.type) == wire_types.get(theirs.type, theirs.type), field.name
        if field.containing_oneof is not None:
            assert theirs.containing_oneof is not None, field.name
