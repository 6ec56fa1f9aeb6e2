"""The `local` model's parts that need no model file: spec, settings, prompt turns, GGUF checks.

The real generation (llama-cpp-python with the SmolLM2 file) is in
tests/integration/test_local_model.py; the model thread in tests/unit/test_model_thread.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from agentscope.message import (
    AssistantMsg,
    Base64Source,
    DataBlock,
    Msg,
    SystemMsg,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolResultBlock,
    UserMsg,
)

from meshscope.config import ConfigError
from meshscope.services.runtime.models import create_model, parse_model_spec
from meshscope.services.runtime.models.gguf import check_gguf
from meshscope.services.runtime.models.local import LocalSettings
from meshscope.services.runtime.models.prompt import chat_turns
from tests.support import REPO


def test_local_specs_parse_with_and_without_a_path() -> None:
    assert str(parse_model_spec("local")) == "local"
    spec = parse_model_spec("local:/models/other.gguf")
    assert (spec.kind, spec.argument) == ("local", "/models/other.gguf")


def test_the_default_mesh_file_runs_every_agent_on_local() -> None:
    agents = yaml.safe_load((REPO / "mesh.yaml").read_text())["agents"]
    assert agents, "mesh.yaml lists no agents"
    for name, entry in agents.items():
        assert parse_model_spec(entry["model"]).kind == "local", name


def test_local_settings_defaults_and_bounds() -> None:
    assert LocalSettings.from_env({}) == LocalSettings(
        max_tokens=256, temperature=0.2, context_tokens=2048, threads=0
    )
    custom = LocalSettings.from_env(
        {
            "MESHSCOPE_LOCAL_MAX_TOKENS": "32",
            "MESHSCOPE_LOCAL_TEMPERATURE": "0",
            "MESHSCOPE_LOCAL_CONTEXT_TOKENS": "512",
            "MESHSCOPE_LOCAL_THREADS": "2",
        }
    )
    assert custom == LocalSettings(max_tokens=32, temperature=0.0, context_tokens=512, threads=2)
    for variable, value, expected in (
        ("MESHSCOPE_LOCAL_MAX_TOKENS", "0", "a count 1-32768"),
        ("MESHSCOPE_LOCAL_TEMPERATURE", "3", "0-2"),
        ("MESHSCOPE_LOCAL_TEMPERATURE", "nan", "0-2"),
        ("MESHSCOPE_LOCAL_CONTEXT_TOKENS", "64", "a count 128-131072"),
        ("MESHSCOPE_LOCAL_THREADS", "-1", "an integer 0-256"),
    ):
        with pytest.raises(ConfigError, match=f"^{variable}=.{value}. is not valid: expected {expected}$"):
            LocalSettings.from_env({variable: value})


def test_max_tokens_must_leave_room_for_a_prompt() -> None:
    with pytest.raises(ConfigError) as info:
        LocalSettings.from_env({"MESHSCOPE_LOCAL_MAX_TOKENS": "512", "MESHSCOPE_LOCAL_CONTEXT_TOKENS": "512"})
    message = str(info.value)
    assert message.startswith("MESHSCOPE_LOCAL_MAX_TOKENS=512 is not valid: expected fewer tokens")
    assert "MESHSCOPE_LOCAL_CONTEXT_TOKENS=512" in message
    assert "\n" not in message


def test_bad_settings_stop_the_model_before_any_file_is_read() -> None:
    with pytest.raises(ConfigError, match=r"^MESHSCOPE_LOCAL_TEMPERATURE="):
        create_model(
            parse_model_spec("local:/no/such/file.gguf"), environ={"MESHSCOPE_LOCAL_TEMPERATURE": "hot"}
        )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.gguf", "model local:{p}: no such file: {p}"),
        (lambda d: d, "model local:{p}: {p} is a directory, not a GGUF file"),
        (
            lambda d: _write(d / "notes.gguf", b"plain text, not a model"),
            "model local:{p}: {p} is not a GGUF file (it does not start with 'GGUF')",
        ),
        (
            lambda d: _write(d / "empty.gguf", b""),
            "model local:{p}: {p} is not a GGUF file (it does not start with 'GGUF')",
        ),
    ],
)
def test_a_file_that_is_not_a_gguf_model_is_one_line(tmp_path: Path, make: object, expected: str) -> None:
    path: Path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        create_model(parse_model_spec(f"local:{path}"), environ={})
    assert str(info.value) == expected.format(p=path)


def test_a_gguf_header_passes_the_cheap_check(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.gguf", b"GGUF\x03\x00\x00\x00")
    assert check_gguf(path, "local:x") == path.resolve()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_chat_turns_flatten_blocks_to_text() -> None:
    png = DataBlock(source=Base64Source(data="iVBORw0KGgo=", media_type="image/png"))
    messages: list[Msg] = [
        SystemMsg(name="system", content="You are an analyst."),
        UserMsg(name="user", content=[TextBlock(text="Summarise 1, 2"), png]),
        AssistantMsg(
            name="analyst",
            content=[
                ThinkingBlock(thinking="the tool will do it"),
                ToolCallBlock(id="c1", name="summarize_numbers", input='{"values": [1, 2]}'),
                ToolResultBlock(id="c1", name="summarize_numbers", output=[TextBlock(text="mean=1.5 ")]),
            ],
        ),
        AssistantMsg(name="analyst", content=[ThinkingBlock(thinking="only thoughts")]),
        AssistantMsg(name="analyst", content="The mean is 1.5."),
    ]
    assert chat_turns(messages) == [
        {"role": "system", "content": "You are an analyst."},
        {"role": "user", "content": "Summarise 1, 2\n[image/png attachment]"},
        {
            "role": "assistant",
            "content": '[called the tool summarize_numbers with {"values":[1,2]}]\n'
            "[the tool summarize_numbers returned: mean=1.5]",
        },
        {"role": "assistant", "content": "The mean is 1.5."},
    ]
