"""AgentService over a real gRPC server on a loopback ephemeral port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.models import ScriptedChatModel
from meshscope.services.runtime.server import AgentServer
from meshscope.services.runtime.turn import TurnStats
from meshscope.testing import free_port, wait_for
from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from meshscope.wire import declared_reason
from tests.conftest import StartServer, hosted

pytestmark = pytest.mark.integration


def kinds(events: list[agent_pb2.AgentEvent]) -> list[str]:
    return [str(e.WhichOneof("kind")) for e in events]


async def test_events_stream_in_order_and_final_message_equals_the_deltas(client: AgentClient) -> None:
    reply = await client.reply("analyst", "Compare gRPC and REST", session_id="s-order")
    events = reply.events
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    k = kinds(events)
    assert k[0] == "reply_start" and k[-1] == "reply_end"
    assert k.index("model_call_start") < k.index("block_start") < k.index("text_delta")
    assert k.index("block_end") < k.index("model_call_end") < k.index("reply_end")
    deltas = [e.text_delta.delta for e in events if e.HasField("text_delta")]
    assert len(deltas) >= 2
    assert reply.message is not None
    assert reply.text == "".join(deltas)
    assert "You said: Compare gRPC and REST" in reply.text
    assert reply.message.role == common_pb2.ROLE_ASSISTANT
    assert reply.message.name == "analyst"
    assert reply.message.usage.output_tokens == len(deltas)
    assert events[0].reply_start.session_id == "s-order"
    assert all(e.reply_id == events[0].reply_id for e in events)


async def test_events_arrive_while_the_model_is_still_streaming(start_server: StartServer) -> None:
    from tests.conftest import hosted

    server = await start_server([hosted("analyst", "scripted:delay_ms=40")])
    async with AgentClient(server.address) as client:
        loop = asyncio.get_running_loop()
        arrivals = []
        async for event in client.invoke("analyst", "stream this please", session_id="s-stream"):
            if event.HasField("text_delta"):
                arrivals.append(loop.time())
    assert len(arrivals) >= 5
    # Buffered delivery would bunch every delta at the end; streamed deltas are spaced out.
    assert arrivals[-1] - arrivals[0] >= 0.04 * (len(arrivals) - 2)


async def test_get_card_describes_the_agent(client: AgentClient) -> None:
    card = await client.get_card("writer")
    assert card.name == "writer"
    assert card.description
    assert [s.id for s in card.skills] == ["writing"]
    assert card.streaming and card.protocol_version == "1"
    assert card.model == "scripted"


async def test_two_agents_in_one_process_are_routed_by_name(client: AgentClient) -> None:
    analyst = await client.reply("analyst", "hello", session_id="s-route")
    writer = await client.reply("writer", "hello", session_id="s-route")
    assert analyst.text.startswith("analyst:")
    assert writer.text.startswith("writer:")
    assert analyst.events[0].agent == "analyst" and writer.events[0].agent == "writer"


async def test_second_turn_in_a_session_sees_the_first(client: AgentClient) -> None:
    await client.reply("analyst", "my budget is 42 euros", session_id="s-mem", user_id="u1")
    second = await client.reply("analyst", "what was my budget?", session_id="s-mem", user_id="u1")
    assert "turn 2" in second.text
    assert "Earlier you said: my budget is 42 euros" in second.text
    # Sessions are per user and per agent: neither sees this conversation.
    other_user = await client.reply("analyst", "hi", session_id="s-mem", user_id="u2")
    other_agent = await client.reply("writer", "hi", session_id="s-mem", user_id="u1")
    assert "turn 1" in other_user.text and "turn 1" in other_agent.text


async def test_session_less_turns_keep_no_state(client: AgentClient) -> None:
    await client.reply("analyst", "first")
    again = await client.reply("analyst", "second")
    assert "turn 1" in again.text


async def test_tool_call_path_streams_call_and_result(client: AgentClient) -> None:
    reply = await client.reply("analyst", "crunch the numbers #tool", session_id="s-tool")
    k = kinds(reply.events)
    for kind in (
        "tool_call_start",
        "tool_call_delta",
        "tool_call_end",
        "tool_result_start",
        "tool_result_delta",
        "tool_result_end",
    ):
        assert kind in k, kind
    assert k.index("tool_call_end") < k.index("tool_result_start") < k.index("tool_result_end")
    start = next(e for e in reply.events if e.HasField("tool_call_start")).tool_call_start
    assert start.name == "summarize_numbers"
    args = "".join(e.tool_call_delta.delta for e in reply.events if e.HasField("tool_call_delta"))
    assert args == '{"values": [2.5, 2.5, 2.5]}'
    end = next(e for e in reply.events if e.HasField("tool_result_end")).tool_result_end
    assert end.state == common_pb2.TOOL_RESULT_STATE_SUCCESS
    assert "count=3 mean=2.5" in reply.text
    # The final message holds the whole turn: call, result and the text after it.
    assert reply.message is not None
    part_kinds = [p.WhichOneof("kind") for p in reply.message.parts]
    assert part_kinds == ["tool_call", "tool_result", "text"]
    assert reply.message.parts[0].tool_call.input == args
    assert reply.message.parts[1].tool_result.output[0].text == "count=3 mean=2.5 min=2.5 max=2.5"


async def test_reflection_lists_the_services(analyst_writer: AgentServer) -> None:
    async with grpc.aio.insecure_channel(analyst_writer.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        services = []
        async for response in stub.ServerReflectionInfo(requests()):
            services = [s.name for s in response.list_services_response.service]
    assert "meshscope.v1.AgentService" in services
    assert "grpc.health.v1.Health" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services


async def test_client_cancellation_cancels_the_agent_turn(start_server: StartServer) -> None:
    server = await start_server(["analyst"])
    model = server.agents["analyst"].model
    assert isinstance(model, ScriptedChatModel)
    async with AgentClient(server.address) as client:
        got = 0
        async for event in client.invoke("analyst", "talk a lot #slow", session_id="s-cancel"):
            got += event.HasField("text_delta")
            if got == 3:
                break  # leaving the loop cancels the call
    stats = await wait_for(lambda: _stats(server), lambda s: s.cancelled == 1, timeout=5)
    assert stats.in_flight == 0 and stats.completed == 0
    assert model.cancelled_calls == 1
    # The partial turn was saved, so the session continues from it.
    async with AgentClient(server.address) as client:
        after = await client.reply("analyst", "are you still there?", session_id="s-cancel")
    assert "turn 2" in after.text


async def _stats(server: AgentServer) -> TurnStats:
    return server.stats


async def test_model_failure_is_an_error_event_then_a_status(client: AgentClient) -> None:
    events: list[agent_pb2.AgentEvent] = []
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for event in client.invoke("analyst", "please #fail", session_id="s-fail"):
            events.append(event)
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    assert "scripted model failure requested by #fail" in str(failure.value.details())
    assert "Traceback" not in str(failure.value.details())
    assert kinds(events)[0] == "reply_start"
    assert events[-1].HasField("error")
    assert events[-1].error.code == "INTERNAL"
    assert "analyst" in events[-1].error.message
    # The reason is declared on both: the event and the status.
    assert events[-1].error.reason == common_pb2.ERROR_REASON_MODEL_FAILURE
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_MODEL_FAILURE
    # The state was saved in `finally`: the failed turn's input is remembered.
    after = await client.reply("analyst", "try again", session_id="s-fail")
    assert "Earlier you said: please #fail" in after.text


# ---- bad input -------------------------------------------------------------------------------


async def _invoke_status(address: str, request: agent_pb2.InvokeRequest) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for _ in stub.Invoke(request, timeout=10):
                pass
    return failure.value


def text_input(text: str = "hi") -> common_pb2.Message:
    return common_pb2.Message(role=common_pb2.ROLE_USER, parts=[common_pb2.Part(text=text)])


async def test_unknown_agent_is_not_found_naming_the_hosted_agents(analyst_writer: AgentServer) -> None:
    error = await _invoke_status(
        analyst_writer.address, agent_pb2.InvokeRequest(agent="poet", input=text_input())
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no agent 'poet' here: this process hosts analyst, writer"
    assert declared_reason(error.trailing_metadata()) == common_pb2.ERROR_REASON_NOT_FOUND
    async with AgentClient(analyst_writer.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as card_failure:
            await client.get_card("poet")
    assert card_failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert declared_reason(card_failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            agent_pb2.InvokeRequest(input=text_input()),
            "agent: is required: this process hosts analyst, writer",
        ),
        (agent_pb2.InvokeRequest(agent="analyst"), "input: is required"),
        (agent_pb2.InvokeRequest(agent="analyst", input=common_pb2.Message()), "input.parts: must contain"),
        (
            agent_pb2.InvokeRequest(agent="analyst", input=text_input("   ")),
            "input.parts: all text parts are empty",
        ),
        (
            agent_pb2.InvokeRequest(
                agent="analyst",
                input=common_pb2.Message(parts=[common_pb2.Part(text="a"), common_pb2.Part()]),
            ),
            "input.parts[1]: no content",
        ),
        (
            agent_pb2.InvokeRequest(
                agent="analyst",
                input=common_pb2.Message(parts=[common_pb2.Part(data=common_pb2.DataPart(data=b"x"))]),
            ),
            "input.parts[0].data.media_type: is required",
        ),
        (
            agent_pb2.InvokeRequest(
                agent="analyst",
                input=common_pb2.Message(
                    parts=[common_pb2.Part(url=common_pb2.UrlPart(url="not a url", media_type="text/html"))]
                ),
            ),
            "input.parts[0].url.url: must be an absolute URL",
        ),
        (
            agent_pb2.InvokeRequest(
                agent="analyst",
                input=common_pb2.Message(
                    parts=[common_pb2.Part(tool_call=common_pb2.ToolCall(id="c", name="t"))]
                ),
            ),
            "input.parts[0]: a user message may carry only text, data and url parts",
        ),
        (
            agent_pb2.InvokeRequest(
                agent="analyst",
                input=common_pb2.Message(role=common_pb2.ROLE_ASSISTANT, parts=[common_pb2.Part(text="x")]),
            ),
            "input.role: an input message must have ROLE_USER",
        ),
        (
            agent_pb2.InvokeRequest(agent="analyst", input=text_input(), session_id="a\nb"),
            "session_id: must not",
        ),
        (
            agent_pb2.InvokeRequest(agent="analyst", input=text_input(), user_id="u" * 257),
            "user_id: must be at most",
        ),
        # Names and URLs far beyond gRPC's 16 KiB metadata limit: the message must stay short.
        (agent_pb2.InvokeRequest(agent="x" * 100_000, input=text_input()), "agent: must be at most 256"),
        (
            agent_pb2.InvokeRequest(
                agent="analyst",
                input=common_pb2.Message(
                    parts=[common_pb2.Part(url=common_pb2.UrlPart(url="x" * 100_000, media_type="text/html"))]
                ),
            ),
            "input.parts[0].url.url: must be an absolute URL, got 'xxxx",
        ),
    ],
)
async def test_malformed_input_is_invalid_argument_naming_the_field(
    analyst_writer: AgentServer, request_: agent_pb2.InvokeRequest, field: str
) -> None:
    error = await _invoke_status(analyst_writer.address, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(error.details()).startswith(field), error.details()
    assert declared_reason(error.trailing_metadata()) == common_pb2.ERROR_REASON_INVALID_INPUT
    assert analyst_writer.stats.started == 0


async def test_oversized_message_is_resource_exhausted(start_server: StartServer) -> None:
    server = await start_server(["analyst"], max_message_bytes=64 * 1024)
    error = await _invoke_status(
        server.address, agent_pb2.InvokeRequest(agent="analyst", input=text_input("x" * 100_000))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # gRPC's own refusal, not the service's: it declares no reason, and a caller can tell.
    assert declared_reason(error.trailing_metadata()) is None
    assert server.stats.started == 0


async def test_single_agent_process_accepts_an_empty_agent_name(start_server: StartServer) -> None:
    server = await start_server(["writer"])
    async with AgentClient(server.address) as client:
        reply = await client.reply("", "hello there")
        card = await client.get_card()
    assert reply.text.startswith("writer:")
    assert card.name == "writer"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
async def test_serves_on_an_ipv6_address(start_server: StartServer, host: str) -> None:
    server = await start_server(["echo"], host=host)
    assert server.address == f"[::1]:{server.port}"
    async with AgentClient(server.address) as client:
        reply = await client.reply("echo", "over six")
    assert reply.text.startswith("over six over six")


async def test_an_unreachable_model_provider_is_unavailable_naming_its_url(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real connection refused on loopback, through AgentScope's OpenAI model and the openai SDK."""
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("MESHSCOPE_MODEL_RETRIES", "0")
    server = await start_server([hosted("analyst", "openai:gpt-4o-mini")])
    events: list[agent_pb2.AgentEvent] = []
    async with AgentClient(server.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for event in client.invoke("analyst", "hello"):
                events.append(event)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"model unreachable at {base_url}/chat/completions" in str(failure.value.details())
    assert events[-1].HasField("error")
    assert events[-1].error.retryable
    assert events[-1].error.reason == common_pb2.ERROR_REASON_MODEL_FAILURE
    assert declared_reason(failure.value.trailing_metadata()) == common_pb2.ERROR_REASON_MODEL_FAILURE


async def test_an_event_over_the_message_limit_ends_the_turn_with_an_error_event(
    start_server: StartServer,
) -> None:
    server = await start_server(["analyst"], max_message_bytes=4096)
    long_text = "word " * 600  # ~3 KB: fits the limit itself, but the second reply quotes the first
    async with AgentClient(server.address) as client:
        await client.reply("analyst", long_text, session_id="s-big")
        events: list[agent_pb2.AgentEvent] = []
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for event in client.invoke("analyst", long_text, session_id="s-big"):
                events.append(event)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over this server's message limit of 4096 bytes" in str(refused.value.details())
    assert events[-1].HasField("error")
    assert events[-1].error.code == "RESOURCE_EXHAUSTED"
    assert events[-1].sequence == len(events)
    assert events[-1].error.reason == common_pb2.ERROR_REASON_TOO_LARGE
    assert declared_reason(refused.value.trailing_metadata()) == common_pb2.ERROR_REASON_TOO_LARGE


async def test_a_request_that_does_not_decode_is_invalid_argument(analyst_writer: AgentServer) -> None:
    async with grpc.aio.insecure_channel(analyst_writer.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as not_protobuf:
            async for _ in channel.unary_stream("/meshscope.v1.AgentService/Invoke")(b"\xff\xff\xff\xff"):
                pass
        with pytest.raises(grpc.aio.AioRpcError) as not_utf8:  # field 1, `agent`, is not UTF-8
            await channel.unary_unary("/meshscope.v1.AgentService/GetCard")(b"\x0a\x02\xff\xfe")
    for refused in (not_protobuf.value, not_utf8.value):
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(refused.details()).startswith("the request does not decode: Error parsing message")
        assert declared_reason(refused.trailing_metadata()) == common_pb2.ERROR_REASON_INVALID_INPUT


async def test_streams_work_under_opentelemetry_grpc_instrumentation(start_server: StartServer) -> None:
    """Its server interceptor iterates streaming handlers: they must stay async generators."""
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer

    instrumentor = GrpcAioInstrumentorServer()  # type: ignore[no-untyped-call]
    instrumentor.instrument()
    try:
        server = await start_server(["echo"])
    finally:
        instrumentor.uninstrument()
    async with AgentClient(server.address) as client:
        reply = await client.reply("echo", "traced words")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await client.reply("poet", "x")
    assert reply.text.startswith("traced words traced words")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
