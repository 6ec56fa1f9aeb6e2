"""Glue of this test suite: meshscope processes started from the repository, as the suite wants them.

The generic parts (dev Consul and Redis servers, free ports, polling with a deadline, the
fault proxy, gRPC health probes, a child environment without host settings) are the public
`meshscope.testing`. No test sleeps to synchronise:
`meshscope.testing.wait_for` polls a condition until a deadline.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import child_env

REPO = Path(__file__).resolve().parent.parent


def start_agents(
    args: Sequence[str], env: Mapping[str, str] | None = None, *, timeout: float = 60
) -> ServiceProcess:
    """Start `meshscope serve agents ARGS --port 0` and wait for its ready line."""
    return launch(
        meshscope_command("serve", "agents", *args, "--port", "0"), child_env(env), cwd=REPO, timeout=timeout
    )


def start_orchestrator(
    mesh_file: Path, mesh: str, endpoints: Mapping[str, str], *, timeout: float = 60
) -> ServiceProcess:
    """Write `mesh` to `mesh_file`, start `meshscope serve orchestrator` on it (port 0) with static
    discovery of `endpoints` (agent -> host:port), and wait for its ready line."""
    mesh_file.write_text(mesh)
    static = ";".join(f"{agent}={address}" for agent, address in endpoints.items())
    return launch(
        meshscope_command("serve", "orchestrator", "-f", str(mesh_file), "--port", "0"),
        child_env({"MESHSCOPE_STATIC_ENDPOINTS": static}),
        cwd=REPO,
        timeout=timeout,
    )


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `meshscope` CLI to completion, capturing its output."""
    return subprocess.run(
        meshscope_command(*args),
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
