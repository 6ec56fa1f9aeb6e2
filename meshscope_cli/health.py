"""`meshscope health TARGET`: is a mesh process serving? For container health checks and scripts.

TARGET is `host:port` of an agent server or the orchestrator (the standard gRPC health service,
`grpc.health.v1.Health/Check`, over a channel made like every client's: MESHSCOPE_TLS_* and
MESHSCOPE_GRPC_* apply), or an `http(s)://` URL (the bridge's `/healthz`). `--service` asks about
one service or hosted agent instead of the whole server (gRPC only).

Exit status: 0 when serving (SERVING, or HTTP 2xx); 1 when not (NOT_SERVING, a draining server, a
refused connection, a timeout), with one line on stderr saying which; 2 for a bad argument (a
target that is neither `host:port` with a port 1-65535 nor an http(s) URL, a timeout that is not
0-3600 seconds). Proxy variables (HTTP_PROXY and kin) are ignored: the check asks the server
itself, as the container's own health check must, whatever proxy Docker put in the environment.
Docker's HEALTHCHECK and Compose's `healthcheck` read exactly that. (Kubernetes probes gRPC and
HTTP natively: deploy/k8s uses those, not this.)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

__all__ = ["run"]


async def _grpc(target: str, service: str, timeout_s: float) -> str | None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from meshscope.channels import ChannelSettings, open_channel

    channel = open_channel(target, ChannelSettings.from_env(), options=[("grpc.enable_http_proxy", 0)])
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:  # the health service's answer for a name it lacks
            return f"no service {service!r} on this server"
        return f"{error.code().name}: {error.details()}"
    finally:
        await channel.close()
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    return None


def _http(url: Any, timeout_s: float) -> str | None:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    return None if response.is_success else f"HTTP {response.status_code}"


def run(target: str, service: str, timeout_s: float) -> int:
    """Check `target` once; the exit status (see the module docstring)."""
    import httpx

    from meshscope.config import ConfigError, parse_host_port

    if not 0 < timeout_s <= 3600:
        print(f"meshscope: --timeout {timeout_s:g} is not valid: expected 0-3600 seconds", file=sys.stderr)
        return 2
    try:
        if target.lower().startswith(("http://", "https://")):
            try:
                url = httpx.URL(target)
            except httpx.InvalidURL as exc:
                raise ConfigError(f"{target!r} is not a URL: {exc}") from None
            problem = _http(url, timeout_s)
        else:
            parse_host_port(target, "TARGET")  # host:port, a port 1-65535: nothing else is dialled
            problem = asyncio.run(_grpc(target, service, timeout_s))
    except ConfigError as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    if problem is not None:
        print(f"meshscope: {target} is not serving: {problem}", file=sys.stderr)
        return 1
    return 0
