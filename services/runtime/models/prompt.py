"""AgentScope messages as the plain chat turns a GGUF chat template renders.

A chat template (the Jinja2 text in a GGUF's `tokenizer.chat_template`) takes a list of
``{"role": "system" | "user" | "assistant", "content": str}`` turns. AgentScope's messages carry
typed blocks instead; a model that runs in-process and only reads text (`local`) needs them
flattened, and this module is the one place that decides how:

- text and hints: their text;
- a tool call or a tool result (left in a session's history by another model, or by an
  earlier spec of the same agent): one line of text saying what was called or returned, so
  the conversation stays readable to a model that cannot call tools itself;
- thinking: dropped (it was the other model's, not part of the conversation);
- data (images, audio...): named, not shown: ``[image/png attachment]``.

Messages that end up empty are left out; consecutive turns of one role are kept as they are
(chat templates render them one after another).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal, TypedDict

from agentscope.message import DataBlock, HintBlock, Msg, TextBlock, ToolCallBlock, ToolResultBlock

__all__ = ["ChatTurn", "chat_turns"]


class ChatTurn(TypedDict):
    """One turn as chat templates take it."""

    role: Literal["system", "user", "assistant"]
    content: str


def _data(block: DataBlock) -> str:
    return f"[{block.source.media_type} attachment]"


def _parts(parts: str | Sequence[TextBlock | DataBlock]) -> str:
    if isinstance(parts, str):
        return parts
    return " ".join(p.text if isinstance(p, TextBlock) else _data(p) for p in parts)


def _arguments(raw: str) -> str:
    """A tool call's arguments as compact JSON (they arrive as a JSON string, maybe partial)."""
    try:
        return json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return raw


def _block_text(block: object) -> str:
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, HintBlock):
        return _parts(block.hint)
    if isinstance(block, ToolCallBlock):
        return f"[called the tool {block.name} with {_arguments(block.input)}]"
    if isinstance(block, ToolResultBlock):
        return f"[the tool {block.name} returned: {_parts(block.output).strip()}]"
    if isinstance(block, DataBlock):
        return _data(block)
    return ""  # thinking, and any block kind a text-only model has no use for


def chat_turns(messages: Sequence[Msg]) -> list[ChatTurn]:
    """The chat turns of `messages`, in order (see the module docstring for each block kind)."""
    turns: list[ChatTurn] = []
    for msg in messages:
        text = "\n".join(t for t in (_block_text(b).strip() for b in msg.content) if t)
        if text:
            turns.append(ChatTurn(role=msg.role, content=text))
    return turns
