"""The bare a2a-sdk 1.x peer: an A2A server streaming the echo workload over JSON-RPC SSE.

a2a-sdk 1.3.0 as its own docs assemble a server, and nothing else: an `AgentExecutor`,
`DefaultRequestHandler` with the in-memory task store, `create_jsonrpc_routes` and
`create_agent_card_routes` in a Starlette app under uvicorn. Per `SendStreamingMessage` the
executor publishes the task, one artifact chunk per delta (`TaskUpdater.add_artifact`, one
artifact id, `append` after the first, `last_chunk` on the last) and the completed status:
so the SSE stream is the task, CHUNKS `artifactUpdate` events and a final `statusUpdate` in
TASK_STATE_COMPLETED. It is the shape of meshscope's planned A2A bridge without the mesh
behind it: the SDK's own cost per streamed chunk.

Runs in its own process, in meshscope's virtualenv (the `bench` extra installs the SDK):

    python -m bench.peers.a2a_echo [--fault KIND]
    # a2a-sdk runs on asyncio + h11
    # meshscope: serving a2a-sdk on 127.0.0.1:PORT

`--fault` (`bench.echo_text.FAULTS`) streams a wrong reply, for the checks' tests.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence

from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette

from bench.echo_text import FAULTS, faulty_chunks
from bench.peers.asgi import serve_asgi

WHAT = "a2a-sdk"
RPC_PATH = "/"


class EchoExecutor(AgentExecutor):
    """Streams the user's text back as artifact chunks, then completes the task."""

    def __init__(self, fault: str = "none") -> None:
        faulty_chunks("", fault)  # an unknown fault fails at start
        self._fault = fault

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            assert context.message is not None, "SendStreamingMessage always carries a message"
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        chunks, end = faulty_chunks(context.get_user_input(" "), self._fault)
        artifact_id = uuid.uuid4().hex
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            await updater.add_artifact(
                [new_text_part(chunk)], artifact_id=artifact_id, append=i > 0, last_chunk=i == last
            )
        if end:
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Nothing to stop: a turn takes well under a millisecond of work."""


def agent_card(address: str) -> AgentCard:
    """The echo agent's card: streaming, one JSON-RPC interface at `http://address/`."""
    return AgentCard(
        name="echo",
        description="Streams its input back in 20 chunks of 4 words.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(
                url=f"http://{address}{RPC_PATH}", protocol_binding="JSONRPC", protocol_version="1.0"
            )
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Repeats the input.", tags=["test"])],
    )


def build_app(address: str, fault: str = "none") -> Starlette:
    """The Starlette app: the JSON-RPC endpoint at RPC_PATH and the agent card."""
    card = agent_card(address)
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(fault), task_store=InMemoryTaskStore(), agent_card=card
    )
    return Starlette(routes=[*create_jsonrpc_routes(handler, RPC_PATH), *create_agent_card_routes(card)])


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.a2a_echo", description=__doc__)
    parser.add_argument("--fault", choices=sorted(FAULTS), default="none", help="stream a wrong reply")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    serve_asgi(lambda address: build_app(address, args.fault), WHAT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
