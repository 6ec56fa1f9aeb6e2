"""Shared helpers for tests: polling with a deadline, and agent processes.

No test sleeps to synchronise: `wait_for` polls a condition until a deadline.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
READY = re.compile(r"serving .* on (?P<address>\S+)$")
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


@dataclass
class AgentProcess:
    """An agent service in its own process, as users run it."""

    proc: subprocess.Popen[str]
    address: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)
    """Every line the process printed (stdout and stderr), appended as they come."""

    def stdout_lines(self) -> list[str]:
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return out

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


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
) -> AgentProcess:
    """Start `meshscope serve agents ARGS --port 0` and wait for its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshscope_cli.main", "serve", "agents", *args, "--port", "0"],
        cwd=REPO,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line.rstrip("\n"))
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                raise AssertionError(
                    f"agent process exited early with {proc.returncode}: " + "\n".join(log[-5:])
                ) from None
            continue
        match = READY.search(line)
        if match:
            return AgentProcess(proc, match.group("address"), lines, log)
    proc.kill()
    raise AssertionError("agent process did not report ready in time")


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `meshscope` CLI to completion, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "meshscope_cli.main", *args],
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
