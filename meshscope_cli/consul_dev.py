"""A throw-away Consul dev agent on free loopback ports (tests, benchmarks, local runs).

The binary comes from MESHSCOPE_CONSUL_BIN, `make consul` (.tools/bin/consul)
or PATH. Dev mode keeps everything in memory, so a restart on the same ports
is a Consul that "forgot everything".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshscope_cli.launch import free_port

REPO = Path(__file__).resolve().parent.parent


def consul_binary() -> str:
    """Where the consul binary is; fails with how to get one."""
    for candidate in (os.environ.get("MESHSCOPE_CONSUL_BIN"), str(REPO / ".tools" / "bin" / "consul")):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("consul")
    if found:
        return found
    raise RuntimeError("no consul binary: run `make consul` (or put consul >= 1.8 on PATH)")


class ConsulDevAgent:
    """`consul agent -dev` on free ports; optionally with ACLs on (default deny)."""

    def __init__(self, workdir: Path, *, acl_master_token: str | None = None) -> None:
        self.workdir = workdir
        self.acl_master_token = acl_master_token
        self.http_port, self.serf_lan, self.serf_wan, self.server_port = (free_port() for _ in range(4))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """Environment for a process that should use this Consul."""
        return {"CONSUL_HTTP_ADDR": self.http_addr, "MESHSCOPE_DISCOVERY": "consul"}

    def start(self, timeout: float = 20) -> None:
        args = [
            consul_binary(), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
            "-http-port", str(self.http_port), "-serf-lan-port", str(self.serf_lan),
            "-serf-wan-port", str(self.serf_wan), "-server-port", str(self.server_port),
            "-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn",
        ]  # fmt: skip
        if self.acl_master_token:
            config = self.workdir / "acl.json"
            config.write_text(
                json.dumps(
                    {
                        "acl": {
                            "enabled": True,
                            "default_policy": "deny",
                            "tokens": {"master": self.acl_master_token, "agent": self.acl_master_token},
                        }
                    }
                )
            )
            args += ["-config-file", str(config)]
        self.starts += 1
        log = open(self.workdir / f"consul-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"consul exited with {self.proc.returncode}; see {log.name}")
            try:
                if self.get("/v1/status/leader", token=self.acl_master_token) not in ("", None):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("consul did not elect a leader in time")

    def stop(self) -> None:
        """Stop it (dev-mode Consul exits 1 on SIGTERM after a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def get(self, path: str, token: str | None = None) -> Any:
        request = urllib.request.Request(f"http://{self.http_addr}{path}")
        if token:
            request.add_header("X-Consul-Token", token)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def passing(self, agent: str) -> list[str]:
        """Replica ids of `agent` whose checks all pass."""
        entries = self.get(f"/v1/health/service/{agent}?passing=1", token=self.acl_master_token)
        return sorted(e["Service"]["ID"] for e in entries)

    def registered(self) -> dict[str, Any]:
        """Services registered on this agent, by id."""
        result: dict[str, Any] = self.get("/v1/agent/services", token=self.acl_master_token)
        return result
