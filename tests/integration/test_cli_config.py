"""Bad flags and configuration stop the process at start with one line."""

from __future__ import annotations

import pytest

from tests.support import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--agents", "analyst,poet"],
            {},
            "meshscope: unknown agent 'poet': known agents are analyst, writer",
        ),
        (["--agents", ","], {}, "meshscope: --agents needs at least one agent name"),
        (["--agents", "analyst,analyst"], {}, "meshscope: --agents names analyst more than once"),
        (["--agents", "analyst", "--port", "70000"], {}, "meshscope: --port 70000 is not a port (0-65535)"),
        (
            ["--agents", "analyst"],
            {"MESHSCOPE_SHUTDOWN_GRACE_S": "soon"},
            "meshscope: MESHSCOPE_SHUTDOWN_GRACE_S='soon' is not valid: expected seconds 0-2000000",
        ),
        (
            ["--agents", "analyst"],
            {"MESHSCOPE_GRPC_KEEPALIVE_TIME_S": "nan"},
            "meshscope: MESHSCOPE_GRPC_KEEPALIVE_TIME_S='nan' is not valid: expected seconds 0-2000000",
        ),
        (
            ["--agents", "analyst"],
            {"MESHSCOPE_GRPC_MAX_MESSAGE_BYTES": "99999999999"},
            "meshscope: MESHSCOPE_GRPC_MAX_MESSAGE_BYTES='99999999999' is not valid: "
            "expected bytes 1-2147483647",
        ),
        (["--agents", "analyst", "--model", "gpt4"], {}, "meshscope: unknown model spec 'gpt4'"),
        (
            ["--agents", "analyst", "--model", "openai:gpt-4o-mini"],
            {},
            "meshscope: model openai:gpt-4o-mini needs the environment variable OPENAI_API_KEY",
        ),
        (
            ["--agents", "writer", "--model", "dashscope:qwen-turbo"],
            {},
            "meshscope: model dashscope:qwen-turbo needs the environment variable DASHSCOPE_API_KEY",
        ),
        (
            ["--agents", "writer"],
            {"MESHSCOPE_MODEL": "dashscope:qwen-turbo"},
            "meshscope: model dashscope:qwen-turbo needs the environment variable DASHSCOPE_API_KEY",
        ),
    ],
)
def test_bad_configuration_exits_2_with_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    result = run_cli(["serve", "agents", *args], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message), lines[0]


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli(["serve", "everything"])
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_an_argument_that_is_not_utf8_is_one_line_and_exit_2() -> None:
    result = run_cli(["run", "analyst", "\udcff"])  # the byte 0xff, as Python passes it through
    assert result.returncode == 2
    assert result.stderr.strip() == "meshscope: TEXT is not valid UTF-8"
