"""A typed asyncio client for the `Orchestrator` service.

async with OrchestratorClient() as client:          # MESHSCOPE_ORCHESTRATOR or 127.0.0.1:50050
    async for event in client.run("analysis", "Compare gRPC and REST", session_id="s1"):
        ...
    async for line in client.history("s1"):          # the whole transcript, a page at a time
        print(line.name, line.text)

The session API (`get_session`, `history`, `list_sessions`, `sessions`, `delete_session`)
is `meshscope.clients.SessionClient`'s, shared with the agent-service client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from datetime import timedelta
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from meshscope.clients import SessionClient
from meshscope.codec import to_struct
from meshscope.config import Config
from meshscope.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import user_message

DEFAULT_TARGET = "127.0.0.1:50050"
RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "meshscope.v1.Orchestrator"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2.5,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
"""gRPC's own retry policy for calls to the orchestrator (`retry_refused=True`): a call it refuses
UNAVAILABLE before answering anything (an orchestrator replica draining, a connection to one that
just went) is sent again, up to 3 more times, ~0.2-1 s apart. gRPC retries only calls that have
received nothing, so a run that had started streaming is never run twice. The bridge turns it on
(several orchestrators behind one address: the next try reaches another); other clients see the
refusal itself, DRAINING and all."""


def orchestrator_address() -> str:
    """Where clients find the orchestrator: MESHSCOPE_ORCHESTRATOR, or the default."""
    return Config().string("MESHSCOPE_ORCHESTRATOR", DEFAULT_TARGET)


class OrchestratorClient(SessionClient):
    """One channel to an orchestrator (MESHSCOPE_ORCHESTRATOR when no target is given)."""

    _stub_type = orchestrator_pb2_grpc.OrchestratorStub

    def __init__(self, target: str | None = None, *, retry_refused: bool = False, **channel: Any) -> None:
        """`retry_refused`: retry calls refused before they began (`RETRY_SERVICE_CONFIG`).
        `channel`: `options` and `settings`, as `ChannelClient` takes them (`options` win over the
        retry policy)."""
        options = list(channel.pop("options", None) or ())
        if retry_refused:
            options.insert(0, ("grpc.service_config", RETRY_SERVICE_CONFIG))
        super().__init__(target or orchestrator_address(), options=options, **channel)

    async def run(
        self,
        target: str,
        text: str | common_pb2.Message,
        *,
        session_id: str = "",
        user_id: str = "",
        timeout: float | None = None,
        metadata: Mapping[str, Any] | struct_pb2.Struct | None = None,
    ) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        """Run an agent or a pipeline; yields its events as they happen. Leaving early cancels the run.

        `metadata` (JSON-like, or a Struct as it is) is passed to every step as the run's metadata.
        """
        request = orchestrator_pb2.RunRequest(
            target=target, input=user_message(text), session_id=session_id, user_id=user_id
        )
        struct = metadata if isinstance(metadata, struct_pb2.Struct) else to_struct(metadata)
        if struct is not None:
            request.metadata.CopyFrom(struct)
        if timeout is not None:
            request.timeout.CopyFrom(duration_pb2.Duration())
            request.timeout.FromTimedelta(timedelta(seconds=timeout))
        call = self._stub.Run(request, timeout=None if timeout is None else timeout + 5)
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()

    async def list_agents(self, timeout: float = 10.0) -> orchestrator_pb2.ListAgentsResponse:
        response: orchestrator_pb2.ListAgentsResponse = await self._stub.ListAgents(
            orchestrator_pb2.ListAgentsRequest(), timeout=timeout
        )
        return response

    async def list_pipelines(self, timeout: float = 10.0) -> orchestrator_pb2.ListPipelinesResponse:
        response: orchestrator_pb2.ListPipelinesResponse = await self._stub.ListPipelines(
            orchestrator_pb2.ListPipelinesRequest(), timeout=timeout
        )
        return response
