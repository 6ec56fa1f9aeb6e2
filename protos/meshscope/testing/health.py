"""Probing a gRPC server's standard health service (grpc.health.v1), as Consul and load balancers do.

Every meshscope server (agent service, orchestrator) answers it: "" for the whole server, and
one entry per hosted agent. Poll it with a deadline to wait for a state:

    await wait_for(lambda: health_status(address, "analyst"), lambda s: s == "SERVING")
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshscope.channels import ChannelSettings, open_channel

__all__ = ["health_status"]


async def health_status(
    address: str, service: str = "", *, timeout: float = 2.0, settings: ChannelSettings | None = None
) -> str:
    """The status name of `service` at `address` ("SERVING", "NOT_SERVING", ...), or the RPC error
    code name when the call fails ("NOT_FOUND" for an unknown service, "UNAVAILABLE" when nothing
    answers at `address`, or the TLS handshake fails). One call, at most `timeout` seconds, on a
    channel from the channel factory made as `settings` say (default: plaintext, the default
    limits); it never raises for an RPC error, so it can be polled.
    """
    async with open_channel(address, settings or ChannelSettings()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
