"""Shared helpers for tests: polling with a deadline, and agent processes.

No test sleeps to synchronise: `wait_for` polls a condition until a deadline.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshscope_cli.launch import ServiceProcess, launch, meshscope_command

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Poll `probe` until `until(result)` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


async def health_status(address: str, service: str = "") -> str:
    """The health status name of `service` at `address`, or the RPC error code name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: no host model settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHSCOPE_", "OPENAI_", "DASHSCOPE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["MESHSCOPE_SHUTDOWN_PAUSE_S"] = "0"
    # Never register into a Consul that happens to run on this machine.
    env["MESHSCOPE_DISCOVERY"] = "static"
    env.pop("CONSUL_HTTP_ADDR", None)
    env.pop("CONSUL_HTTP_TOKEN", None)
    env.update(extra or {})
    return env


def start_agents(
    args: Sequence[str], env: Mapping[str, str] | None = None, *, timeout: float = 60
) -> ServiceProcess:
    """Start `meshscope serve agents ARGS --port 0` and wait for its ready line."""
    return launch(
        meshscope_command("serve", "agents", *args, "--port", "0"), child_env(env), cwd=REPO, timeout=timeout
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
