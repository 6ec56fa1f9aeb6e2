"""Model specs, the scripted model and server settings (stores: tests/integration/test_stores.py)."""

from __future__ import annotations

import pytest
from agentscope.message import SystemMsg, TextBlock, UserMsg
from agentscope.model import OpenAIChatModel

from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.errors import ConfigError
from meshscope.services.runtime.models import ScriptedChatModel, create_model, parse_model_spec
from meshscope.services.runtime.models.factory import effective_spec
from meshscope.services.runtime.models.scripted import ScriptedModelError


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("gpt-4", "unknown model spec 'gpt-4': expected one of scripted, local, openai, dashscope"),
        ("openai", "model spec 'openai' needs a model name, e.g. openai:<model>"),
        ("scripted:speed=3", "model spec 'scripted:speed=3': scripted takes only delay_ms=<milliseconds>"),
        ("scripted:delay_ms=-1", "model spec 'scripted:delay_ms=-1': delay_ms must be between 0 and 10000"),
    ],
)
def test_bad_specs_are_config_errors(spec: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model_spec(spec)
    assert str(info.value) == error


def test_meshscope_model_overrides_every_spec() -> None:
    assert str(effective_spec("dashscope:qwen-turbo", {"MESHSCOPE_MODEL": "scripted"})) == "scripted"
    assert str(effective_spec("dashscope:qwen-turbo", {})) == "dashscope:qwen-turbo"


def test_openai_needs_a_key_unless_a_local_server_is_configured() -> None:
    spec = parse_model_spec("openai:gpt-4o-mini")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        create_model(spec, environ={})
    local = create_model(spec, environ={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert isinstance(local, OpenAIChatModel)
    assert local.client.base_url == "http://127.0.0.1:11434/v1/"


def test_provider_retries_are_configured_once_and_validated() -> None:
    spec = parse_model_spec("openai:gpt-4o-mini")
    local = {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}
    model = create_model(spec, environ={**local, "MESHSCOPE_MODEL_RETRIES": "1"})
    assert isinstance(model, OpenAIChatModel)
    assert model.client.max_retries == 1  # the SDK retries, honouring Retry-After
    assert model.max_retries == 0  # AgentScope's fixed-delay loop would multiply them
    for variable, value, expected in (
        ("MESHSCOPE_MODEL_RETRIES", "-1", "an integer 0-10"),
        ("MESHSCOPE_MODEL_RETRIES", "many", "an integer 0-10"),
        ("MESHSCOPE_MODEL_RETRIES", "nan", "an integer 0-10"),
    ):
        with pytest.raises(ConfigError, match=f"^{variable}=.{value}. is not valid: expected {expected}$"):
            create_model(spec, environ={**local, variable: value})


def test_dashscope_needs_its_key() -> None:
    with pytest.raises(
        ConfigError, match=r"^model dashscope:qwen-turbo needs the environment variable DASHSCOPE_API_KEY$"
    ):
        create_model(parse_model_spec("dashscope:qwen-turbo"), environ={})


async def _words(model: ScriptedChatModel, *texts: str) -> list[str]:
    messages = [SystemMsg(name="system", content="be brief")] + [
        UserMsg(name="user", content=t) for t in texts
    ]
    stream = await model(messages)
    words: list[str] = []
    async for chunk in stream:  # type: ignore[union-attr]
        words.extend(b.text for b in chunk.content if isinstance(b, TextBlock))
    return words


async def test_scripted_model_is_deterministic_and_streams_word_by_word() -> None:
    model = ScriptedChatModel(persona="analyst")
    first = await _words(model, "one", "two")
    second = await _words(ScriptedChatModel(persona="analyst"), "one", "two")
    assert first == second
    assert len(first) > 5
    assert "".join(first[:-1]) == "analyst: turn 2. You said: two. Earlier you said: one."


async def test_scripted_failure_marker_raises() -> None:
    with pytest.raises(ScriptedModelError):
        await _words(ScriptedChatModel(), "break #fail")


def test_settings_read_and_validate_the_environment() -> None:
    settings = ServerSettings.from_env({"MESHSCOPE_PORT": "6000", "MESHSCOPE_GRPC_MAX_MESSAGE_BYTES": "1024"})
    assert settings.port == 6000
    assert ("grpc.max_receive_message_length", 1024) in settings.grpc_options()
    assert ("grpc.keepalive_time_ms", 30_000) in settings.grpc_options()
    with pytest.raises(ConfigError, match=r"^MESHSCOPE_PORT=.99999. is not valid: expected a port 0-65535$"):
        ServerSettings.from_env({"MESHSCOPE_PORT": "99999"})
    with pytest.raises(ConfigError, match="MESHSCOPE_GRPC_MAX_MESSAGE_BYTES"):
        ServerSettings.from_env({"MESHSCOPE_GRPC_MAX_MESSAGE_BYTES": "0"})
    for variable, value in (
        ("MESHSCOPE_SHUTDOWN_GRACE_S", "inf"),
        ("MESHSCOPE_GRPC_KEEPALIVE_TIME_S", "1e10"),
        ("MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S", "nan"),
    ):
        with pytest.raises(
            ConfigError, match=f"^{variable}=.{value}. is not valid: expected seconds 0-2000000$"
        ):
            ServerSettings.from_env({variable: value})
