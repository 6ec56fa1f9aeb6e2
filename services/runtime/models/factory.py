"""Model specs: one string per agent picks and configures its chat model.

Specs (docs/configuration.md, "Model specs"):
  scripted[:delay_ms=N]   deterministic offline model (the agents' default, and the tests')
  local[:<path>]          a real small LLM in-process (SmolLM2-135M-Instruct, or any GGUF
                          chat model at <path>); the [local] extra; MESHSCOPE_LOCAL_* knobs
  openai:<model>          OpenAI or any OpenAI-compatible server (OPENAI_BASE_URL)
  dashscope:<model>       Alibaba DashScope, e.g. dashscope:qwen-turbo

Environment read here:
  MESHSCOPE_MODEL   when set, overrides every agent's spec (e.g. `scripted`).
  OPENAI_API_KEY    required for openai:*, unless OPENAI_BASE_URL points at a
                    server that needs no key (vLLM, Ollama, llama.cpp).
  OPENAI_BASE_URL   base URL of an OpenAI-compatible server.
  DASHSCOPE_API_KEY required for dashscope:*.
  MESHSCOPE_MODEL_RETRIES  openai:/dashscope: calls are retried this many times
                           on connection errors, timeouts, 408/409/429 and 5xx,
                           with exponential back-off that honours Retry-After,
                           then the turn fails (0-10)                        2
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agentscope.model import ChatModelBase
from pydantic import SecretStr

from meshscope.config import Config, ConfigError
from meshscope.services.runtime.models.scripted import ScriptedChatModel

MODEL_OVERRIDE_ENV = "MESHSCOPE_MODEL"
KNOWN_KINDS = ("scripted", "local", "openai", "dashscope")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a provider call is tried again.

    The openai SDK does the retrying (both model kinds go through it): it backs off
    exponentially and honours the provider's Retry-After. AgentScope's own retry
    loop, which waits a fixed delay, is turned off, or the two would multiply.
    """

    retries: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RetryPolicy:
        """MESHSCOPE_MODEL_RETRIES, 0-10; ConfigError names a bad value."""
        d = cls()
        return cls(
            retries=Config(environ).integer("MESHSCOPE_MODEL_RETRIES", d.retries, minimum=0, maximum=10)
        )


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: the provider kind and its argument."""

    kind: str
    argument: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse and validate a spec string; ConfigError names what is wrong."""
    kind, _, argument = spec.strip().partition(":")
    if kind not in KNOWN_KINDS:
        raise ConfigError(f"unknown model spec {spec!r}: expected one of {', '.join(KNOWN_KINDS)}")
    if kind in ("openai", "dashscope") and not argument:
        raise ConfigError(f"model spec {spec!r} needs a model name, e.g. {kind}:<model>")
    if kind == "scripted" and argument:
        _scripted_delay(argument, spec)
    return ModelSpec(kind, argument)


def effective_spec(spec: str, environ: Mapping[str, str] | None = None) -> ModelSpec:
    """The spec an agent really runs: MESHSCOPE_MODEL wins when set."""
    override = Config(environ).optional(MODEL_OVERRIDE_ENV)
    return parse_model_spec(override or spec)


def _scripted_delay(argument: str, spec: str) -> float:
    key, _, value = argument.partition("=")
    if key != "delay_ms":
        raise ConfigError(f"model spec {spec!r}: scripted takes only delay_ms=<milliseconds>")
    try:
        delay_ms = float(value)
    except ValueError:
        raise ConfigError(f"model spec {spec!r}: delay_ms must be a number") from None
    if not 0 <= delay_ms <= 10_000:
        raise ConfigError(f"model spec {spec!r}: delay_ms must be between 0 and 10000")
    return delay_ms / 1000


def _require(config: Config, variable: str, spec: ModelSpec) -> str:
    value = config.optional(variable)
    if value is None:
        raise ConfigError(f"model {spec} needs the environment variable {variable}")
    return value


def create_model(
    spec: ModelSpec, *, persona: str = "", environ: Mapping[str, str] | None = None
) -> ChatModelBase:
    """Build the chat model for a spec, at start.

    Raises ConfigError (one line) for a missing credential, and, for `local`, a missing extra
    or a GGUF file that cannot be loaded (the model is loaded and warmed up here).
    """
    env = os.environ if environ is None else environ
    config = Config(env)
    if spec.kind == "scripted":
        delay = _scripted_delay(spec.argument, str(spec)) if spec.argument else 0.0
        return ScriptedChatModel(chunk_delay_s=delay, persona=persona)
    if spec.kind == "local":
        # Imported here: llama-cpp-python is an optional extra, and only `local` needs it.
        from meshscope.services.runtime.models.local import create_local_model

        return create_local_model(spec.argument, spec=str(spec), persona=persona, environ=env)
    if spec.kind == "openai":
        from agentscope.credential import OpenAICredential
        from agentscope.model import OpenAIChatModel

        base_url = config.optional("OPENAI_BASE_URL")
        api_key = config.string("OPENAI_API_KEY", "")
        if not api_key:
            if base_url is None:
                raise ConfigError(f"model {spec} needs the environment variable OPENAI_API_KEY")
            api_key = "unused"  # local OpenAI-compatible servers ignore the key
        credential = OpenAICredential(api_key=SecretStr(api_key), base_url=base_url)
        retry = RetryPolicy.from_env(env)
        return OpenAIChatModel(
            credential=credential,
            model=spec.argument,
            stream=True,
            max_retries=0,
            client_kwargs={"max_retries": retry.retries},
        )
    from agentscope.credential import DashScopeCredential
    from agentscope.model import DashScopeChatModel

    api_key = _require(config, "DASHSCOPE_API_KEY", spec)
    retry = RetryPolicy.from_env(env)
    return DashScopeChatModel(
        credential=DashScopeCredential(api_key=SecretStr(api_key)),
        model=spec.argument,
        stream=True,
        max_retries=0,
        client_kwargs={"max_retries": retry.retries},
    )
