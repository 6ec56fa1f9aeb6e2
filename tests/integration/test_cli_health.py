"""`meshscope health`: the check containers run, against real servers."""

from __future__ import annotations

import pytest

from meshscope.cli.launch import launch, meshscope_command
from meshscope.testing import child_env
from tests.support import REPO, run_cli, start_agents

pytestmark = pytest.mark.integration


def test_health_of_an_agent_server_and_of_one_hosted_agent() -> None:
    agents = start_agents(["--agents", "analyst", "--model", "scripted"])
    try:
        assert run_cli(["health", agents.address]).returncode == 0
        assert run_cli(["health", agents.address, "--service", "analyst"]).returncode == 0
        unknown = run_cli(["health", agents.address, "--service", "nobody"])
        assert unknown.returncode == 1
        assert unknown.stderr.strip().endswith("is not serving: no service 'nobody' on this server"), (
            unknown.stderr
        )
    finally:
        agents.stop()
    gone = run_cli(["health", agents.address, "--timeout", "2"])
    assert gone.returncode == 1 and "UNAVAILABLE" in gone.stderr, gone.stderr


def test_health_of_the_bridge_over_http() -> None:
    bridge = launch(
        meshscope_command("serve", "bridge", "--port", "0"),
        child_env({"MESHSCOPE_ORCHESTRATOR": "127.0.0.1:1", "MESHSCOPE_BRIDGE_DATABASE_URL": "memory"}),
        cwd=REPO,
    )
    try:
        assert run_cli(["health", f"{bridge.address}/healthz"]).returncode == 0
        missing = run_cli(["health", f"{bridge.address}/nothing-here"])
        assert missing.returncode == 1 and "is not serving: HTTP 5" in missing.stderr, (
            missing.stderr
        )  # no orchestrator
    finally:
        bridge.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([""], "is not host:port"),
        (["127.0.0.1"], "is not host:port"),  # it dialled port 443
        (["127.0.0.1:99999"], "is not host:port"),  # it dialled 99999 mod 65536
        (["http://[::1"], "is not a URL"),  # it was httpx's traceback
        (["127.0.0.1:1", "--timeout", "inf"], "--timeout inf is not valid"),  # was DEADLINE_EXCEEDED at once
    ],
)
def test_a_bad_health_argument_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run_cli(["health", *args])
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_health_checks_ignore_proxy_settings() -> None:
    agents = start_agents(["--agents", "analyst", "--model", "scripted"])
    try:
        proxied = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
        assert run_cli(["health", agents.address], env=proxied).returncode == 0
    finally:
        agents.stop()
