"""Registering servicers: a response encoder replaced by name, and a name the service lacks."""

from __future__ import annotations

import grpc
import pytest

from meshscope.servicers import add_servicer
from meshscope.v1 import orchestrator_pb2_grpc


async def test_a_response_serializer_for_a_method_the_service_lacks_is_a_type_error() -> None:
    server = grpc.aio.server()
    try:
        with pytest.raises(TypeError, match=r"meshscope\.v1\.Orchestrator has no method 'Runn'"):
            add_servicer(
                server,
                orchestrator_pb2_grpc.add_OrchestratorServicer_to_server,
                orchestrator_pb2_grpc.OrchestratorServicer(),
                {"Runn": bytes},
            )
    finally:
        await server.stop(None)
