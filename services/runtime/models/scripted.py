"""The deterministic offline model: the only stand-in the tests allow.

It runs through AgentScope's real `ChatModelBase` interface and streams word
by word, so everything downstream of the model (agent loop, event mapping,
gRPC streaming, state) is the production path. Its reply depends on the
conversation it is shown, so state continuity across turns is visible in
the text. A few markers in the latest user message steer it:

- `#tool` or `#tool:<name>`: call a tool (the first offered, or the named
  one) with arguments derived from its JSON schema, then report the result;
- `#fail`: raise `ScriptedModelError` instead of answering;
- `#slow` or `#slow=<n>`: stream a long answer (400 words, or n) with a
  50 ms pause per word (for cancellation, deadline and drain scenarios).

Asked by a route pipeline to pick an agent (the orchestrator's "Reply with exactly one name from:
a, b." question), it answers with one of the names: the first the request mentions, else one picked
by the request's bytes, so `triage` works offline and the same request always goes the same way;
`#route=<text>` in the request makes it answer `<text>` (the rest of the line) instead: a router's
bad answer, for tests.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from typing import Any

from agentscope.credential import CredentialBase
from agentscope.formatter import FormatterBase
from agentscope.message import Msg, TextBlock, ToolCallBlock, ToolResultBlock
from agentscope.model import ChatModelBase, ChatResponse, ChatUsage
from pydantic import BaseModel

from meshscope.wire import ROUTING_ASK

_TOOL_MARKER = re.compile(r"#tool(?::(?P<name>[A-Za-z0-9_\-]+))?")
_SLOW_MARKER = re.compile(r"#slow(?:=(?P<words>\d{1,5}))?")
_ROUTE_MARKER = re.compile(re.escape(ROUTING_ASK) + r"(?P<names>[^\n]+?)\.\n")
"""The orchestrator's question to a route pipeline's router (`meshscope.wire.routing_question`)."""
SLOW_WORDS = 400
SLOW_DELAY_S = 0.05


class ScriptedModelError(RuntimeError):
    """The failure a `#fail` marker asks for."""


class ScriptedCredential(CredentialBase):
    """The scripted model needs no secret; AgentScope still wants a credential."""


class _PassThroughFormatter(FormatterBase):
    """No provider format to produce: the scripted model reads `Msg`s directly."""

    async def format(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        msgs: list[Msg] = list(args[0]) if args else list(kwargs.get("msgs", []))
        return [m.model_dump(mode="json") for m in msgs]


def _text(msg: Msg) -> str:
    return " ".join(b.text for b in msg.content if isinstance(b, TextBlock)).strip()


def _sample_value(schema: dict[str, Any]) -> Any:
    """A deterministic value of the JSON-schema type, for scripted tool calls."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return 2
    if kind == "number":
        return 2.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample_value(schema.get("items", {"type": "number"})) for _ in range(3)]
    if kind == "object":
        return {}
    return "meshscope"


def _route_choice(names: str, request: str) -> str:
    """A router's answer, deterministic: the first allowed name the request mentions, else one picked
    by the request's bytes (the same request always goes to the same agent)."""
    forced = re.search(r"#route=([^\n]*)", request)
    if forced:  # tests of what the orchestrator does with a router's bad answer
        return forced.group(1).rstrip(".!?") or "I cannot decide."
    choices = [n.strip() for n in names.split(",") if n.strip()]
    lowered = request.lower()
    for name in choices:
        if name.lower() in lowered:
            return name
    return choices[sum(request.encode()) % len(choices)] if choices else "nobody"


def _tool_arguments(tool: dict[str, Any]) -> dict[str, Any]:
    params = tool.get("function", {}).get("parameters", {}) or {}
    properties: dict[str, Any] = params.get("properties", {}) or {}
    required = params.get("required", list(properties))
    return {name: _sample_value(properties[name]) for name in required if name in properties}


class ScriptedChatModel(ChatModelBase):
    """Deterministic, offline, streaming chat model (see the module docstring)."""

    class Parameters(BaseModel):
        """The scripted model's knobs."""

        chunk_delay_s: float = 0.0
        """Pause before each streamed word, to imitate a real model's pace."""

    def __init__(self, chunk_delay_s: float = 0.0, persona: str = "") -> None:
        super().__init__(
            credential=ScriptedCredential(),
            model="scripted",
            parameters=self.Parameters(chunk_delay_s=chunk_delay_s),
            stream=True,
            max_retries=0,
        )
        self.formatter = _PassThroughFormatter()
        self.persona = persona
        self.chunk_delay_s = chunk_delay_s
        self.calls = 0
        self.cancelled_calls = 0

    async def _call_api(
        self,
        model_name: str,
        messages: list[Msg],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatResponse, None]:
        self.calls += 1
        user_turns = [_text(m) for m in messages if m.role == "user" and _text(m)]
        latest = user_turns[-1] if user_turns else ""
        last = messages[-1] if messages else None
        tool_results = [b for b in last.content if isinstance(b, ToolResultBlock)] if last is not None else []
        if tool_results:
            return self._stream_words(self._after_tools(tool_results), messages)
        if "#fail" in latest:
            raise ScriptedModelError("scripted model failure requested by #fail")
        route = _ROUTE_MARKER.search(latest)
        if route:
            return self._stream_words([_route_choice(route.group("names"), latest[route.end() :])], messages)
        marker = _TOOL_MARKER.search(latest)
        if marker and tools:
            return self._stream_tool_call(marker.group("name"), tools, messages)
        slow = _SLOW_MARKER.search(latest)
        extra = (int(slow.group("words") or SLOW_WORDS)) if slow else 0
        return self._stream_words(self._answer(user_turns), messages, slow_words=extra)

    def _answer(self, user_turns: list[str]) -> list[str]:
        who = f"{self.persona}: " if self.persona else ""
        latest = user_turns[-1].rstrip(".!?") if user_turns else ""
        text = f"{who}turn {len(user_turns)}. You said: {latest}."
        if len(user_turns) > 1:
            text += f" Earlier you said: {user_turns[-2].rstrip('.!?')}."
        return [w if i == 0 else " " + w for i, w in enumerate(text.split())]

    @staticmethod
    def _after_tools(results: list[ToolResultBlock]) -> list[str]:
        parts = []
        for result in results:
            output = (
                result.output
                if isinstance(result.output, str)
                else " ".join(b.text for b in result.output if isinstance(b, TextBlock))
            )
            parts.append(f"The {result.name} tool returned {output.strip()}.")
        words = " ".join(parts).split()
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    @staticmethod
    def _usage(messages: list[Msg], output_words: int) -> ChatUsage:
        input_words = sum(len(_text(m).split()) for m in messages)
        return ChatUsage(input_tokens=input_words, output_tokens=output_words, time=0.0)

    async def _stream_words(
        self, words: list[str], messages: list[Msg], slow_words: int = 0
    ) -> AsyncGenerator[ChatResponse, None]:
        words = words + [f" w{i}" for i in range(slow_words)]
        delay = SLOW_DELAY_S if slow_words else self.chunk_delay_s
        block_id = f"text-{self.calls}"
        try:
            for word in words:
                if delay:
                    await asyncio.sleep(delay)
                yield ChatResponse(content=[TextBlock(id=block_id, text=word)], is_last=False)
        except asyncio.CancelledError:
            self.cancelled_calls += 1
            raise
        yield ChatResponse(content=[], is_last=False, usage=self._usage(messages, len(words)))

    async def _stream_tool_call(
        self, name: str | None, tools: list[dict[str, Any]], messages: list[Msg]
    ) -> AsyncGenerator[ChatResponse, None]:
        by_name = {t.get("function", {}).get("name"): t for t in tools}
        tool = by_name.get(name) if name else tools[0]
        if tool is None:
            tool = tools[0]
        tool_name = tool["function"]["name"]
        arguments = json.dumps(_tool_arguments(tool))
        call_id = f"call-{self.calls}"
        # All fragments of one tool call must come in consecutive chunks.
        half = len(arguments) // 2
        for fragment in (arguments[:half], arguments[half:]):
            yield ChatResponse(
                content=[ToolCallBlock(id=call_id, name=tool_name, input=fragment)], is_last=False
            )
        yield ChatResponse(content=[], is_last=False, usage=self._usage(messages, 1))
