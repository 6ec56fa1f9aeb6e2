"""Probing a gRPC server's standard health service (grpc.health.v1), as Consul and load balancers do.

Every meshscope server (agent service, orchestrator) answers it: "" for the whole server, and
one entry per hosted agent. Poll it with a deadline to wait for a state:

    await wait_for(lambda: health_status(address, "analyst"), lambda s: s == "SERVING")
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["health_status"]


async def health_status(address: str, service: str = "", *, timeout: float = 2.0) -> str:
    """The status name of `service` at `address` ("SERVING", "NOT_SERVING", ...), or the RPC error
    code name when the call fails ("NOT_FOUND" for an unknown service, "UNAVAILABLE" when nothing
    answers at `address`). One plaintext call, at most `timeout` seconds; it never raises for an
    RPC error, so it can be polled.
    """
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
