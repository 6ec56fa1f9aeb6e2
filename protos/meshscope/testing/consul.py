"""A throw-away Consul dev agent on free loopback ports.

`consul agent -dev` keeps everything in memory: a restart on the same ports is a Consul that
"forgot everything" (what a mesh must survive). The binary is the first of:
MESHSCOPE_CONSUL_BIN, `.tools/bin/consul` of the source checkout (`make consul` puts it there),
`consul` on PATH.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshscope.config import Config
from meshscope.testing._process import DevServer, DevServerError, checkout_tools
from meshscope.testing.ports import free_ports

__all__ = ["ConsulDevAgent", "consul_binary"]


def consul_binary() -> str:
    """The consul binary to run: MESHSCOPE_CONSUL_BIN, then `.tools/bin/consul`, then PATH's.

    Raises DevServerError saying how to get one when there is none.
    """
    for candidate in (Config().optional("MESHSCOPE_CONSUL_BIN"), str(checkout_tools() / "consul")):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("consul")
    if found:
        return found
    raise DevServerError("no consul binary: run `make consul` (or put consul >= 1.8 on PATH)")


class ConsulDevAgent(DevServer):
    """`consul agent -dev` bound to 127.0.0.1; optionally with ACLs on (default deny).

    Ports: HTTP API on `http_port` (`http_addr`), Serf LAN/WAN and server RPC on three more, all
    picked by `free_ports` (distinct, TCP and UDP free) when the object is made, picked again if
    one is taken before the first start, and kept across restarts; DNS and gRPC are off.
    `start()` returns once the agent has elected itself leader. Its output goes to
    `consul-N.log` in `workdir` (N counts the starts). `stop()` sends SIGTERM (a dev agent
    then exits 1 after a clean shutdown) and SIGKILL after 15 s.

    With `acl_master_token`, ACLs are on with default policy deny and that token is the
    master (and agent) token: a process without a token sees nothing.

        with ConsulDevAgent() as consul:
            env = consul.env()   # CONSUL_HTTP_ADDR=127.0.0.1:<port>, MESHSCOPE_DISCOVERY=consul
    """

    name = "consul"

    def __init__(self, workdir: Path | None = None, *, acl_master_token: str | None = None) -> None:
        super().__init__(workdir)
        self.acl_master_token = acl_master_token
        self._pick_ports()

    def _ports(self) -> list[int]:
        return [self.http_port, self.serf_lan, self.serf_wan, self.server_port]

    def _pick_ports(self) -> None:
        # Serf listens on TCP and UDP under one number, hence udp=True.
        self.http_port, self.serf_lan, self.serf_wan, self.server_port = free_ports(4, udp=True)

    @property
    def http_addr(self) -> str:
        """`127.0.0.1:<http_port>`, the value of CONSUL_HTTP_ADDR."""
        return f"127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """Environment for a meshscope process that should register with and discover through this Consul."""
        return {"CONSUL_HTTP_ADDR": self.http_addr, "MESHSCOPE_DISCOVERY": "consul"}

    def _command(self) -> list[str]:
        args = [
            consul_binary(), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
            "-http-port", str(self.http_port), "-serf-lan-port", str(self.serf_lan),
            "-serf-wan-port", str(self.serf_wan), "-server-port", str(self.server_port),
            "-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn",
        ]  # fmt: skip
        if self.acl_master_token:
            config = self.workdir / "acl.json"
            tokens = {"master": self.acl_master_token, "agent": self.acl_master_token}
            config.write_text(
                json.dumps({"acl": {"enabled": True, "default_policy": "deny", "tokens": tokens}})
            )
            args += ["-config-file", str(config)]
        return args

    def _answers(self) -> bool:
        try:
            return self.get("/v1/status/leader", token=self.acl_master_token) not in ("", None)
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def get(self, path: str, token: str | None = None) -> Any:
        """GET `path` of the HTTP API (e.g. "/v1/agent/services"): the decoded JSON body.

        Raises urllib.error.HTTPError on an error status (403 without the token under ACLs),
        URLError/OSError when the agent does not answer (5 s limit).
        """
        request = urllib.request.Request(f"http://{self.http_addr}{path}")
        if token:
            request.add_header("X-Consul-Token", token)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def passing(self, agent: str) -> list[str]:
        """Sorted service ids registered under the service name `agent` whose checks all pass."""
        entries = self.get(f"/v1/health/service/{agent}?passing=1", token=self.acl_master_token)
        return sorted(e["Service"]["ID"] for e in entries)

    def registered(self) -> dict[str, Any]:
        """Services registered on this agent, by service id (Consul's /v1/agent/services)."""
        result: dict[str, Any] = self.get("/v1/agent/services", token=self.acl_master_token)
        return result
