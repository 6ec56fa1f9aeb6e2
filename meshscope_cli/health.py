"""`meshscope health TARGET`: is a mesh process serving? For container health checks and scripts.

TARGET is `host:port` of an agent server or the orchestrator (the standard gRPC health service,
`grpc.health.v1.Health/Check`, over a channel made like every client's: MESHSCOPE_TLS_* and
MESHSCOPE_GRPC_* apply), or an `http(s)://` URL (the bridge's `/healthz`). `--service` asks about
one service or hosted agent instead of the whole server (gRPC only).

Exit status: 0 when serving (SERVING, or HTTP 2xx); 1 when not (NOT_SERVING, a draining server, a
refused connection, a timeout), with one line on stderr saying which; 2 for a bad argument.
Docker's HEALTHCHECK and Compose's `healthcheck` read exactly that. (Kubernetes probes gRPC and
HTTP natively: deploy/k8s uses those, not this.)
"""

from __future__ import annotations

import asyncio
import sys

import grpc

__all__ = ["run"]


async def _grpc(target: str, service: str, timeout_s: float) -> str | None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from meshscope.channels import ChannelSettings, open_channel

    channel = open_channel(target, ChannelSettings.from_env())
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


def _http(url: str, timeout_s: float) -> str | None:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    return None if response.is_success else f"HTTP {response.status_code}"


def run(target: str, service: str, timeout_s: float) -> int:
    """Check `target` once; the exit status (see the module docstring)."""
    from meshscope.config import ConfigError

    if not timeout_s > 0:
        print(f"meshscope: --timeout {timeout_s:g} is not a positive number of seconds", file=sys.stderr)
        return 2
    try:
        if target.startswith(("http://", "https://")):
            problem = _http(target, timeout_s)
        else:
            problem = asyncio.run(_grpc(target, service, timeout_s))
    except ConfigError as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    if problem is not None:
        print(f"meshscope: {target} is not serving: {problem}", file=sys.stderr)
        return 1
    return 0
