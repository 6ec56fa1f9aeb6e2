"""The orchestrator client's retry policy (the bridge's), against a real gRPC server that refuses as a
draining orchestrator does: a run refused before it began is sent again; one that had begun is never
rerun; without the policy the refusal reaches the caller as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from meshscope.orchestrator.client import OrchestratorClient
from meshscope.v1 import orchestrator_pb2, orchestrator_pb2_grpc

pytestmark = pytest.mark.integration


class Refusing(orchestrator_pb2_grpc.OrchestratorServicer):
    """Refuses the first `refusals` runs UNAVAILABLE before answering (a drain); `fail_after_start`
    makes every run fail UNAVAILABLE after its first event instead."""

    def __init__(self, refusals: int = 0, fail_after_start: bool = False) -> None:
        self.calls = 0
        self.refusals = refusals
        self.fail_after_start = fail_after_start

    async def Run(  # noqa: N802
        self, request: orchestrator_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.RunEvent]:
        self.calls += 1
        if self.calls <= self.refusals:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "orchestrator is shutting down; retry")
        yield orchestrator_pb2.RunEvent(run_start=orchestrator_pb2.RunStart(target=request.target))
        if self.fail_after_start:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "lost the agent mid-run")
        yield orchestrator_pb2.RunEvent(run_end=orchestrator_pb2.RunEnd(steps=1))


async def serve(servicer: Refusing) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_a_run_refused_before_it_began_is_sent_again() -> None:
    servicer = Refusing(refusals=2)
    server, address = await serve(servicer)
    try:
        async with OrchestratorClient(address, retry_refused=True) as client:
            kinds = [event.WhichOneof("kind") async for event in client.run("analyst", "hi")]
    finally:
        await server.stop(0)
    assert kinds == ["run_start", "run_end"]
    assert servicer.calls == 3


async def test_a_run_that_had_begun_is_not_run_twice() -> None:
    servicer = Refusing(fail_after_start=True)
    server, address = await serve(servicer)
    try:
        async with OrchestratorClient(address, retry_refused=True) as client:
            seen = []
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for event in client.run("analyst", "hi"):
                    seen.append(event.WhichOneof("kind"))
    finally:
        await server.stop(0)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert seen == ["run_start"] and servicer.calls == 1


async def test_without_the_policy_a_refusal_reaches_the_caller() -> None:
    servicer = Refusing(refusals=1)
    server, address = await serve(servicer)
    try:
        async with OrchestratorClient(address) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in client.run("analyst", "hi"):
                    pass
    finally:
        await server.stop(0)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and servicer.calls == 1
