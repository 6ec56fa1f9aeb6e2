"""CPU per turn of the runtime and agent alone, in this process, without gRPC.

A reference beside the server-process figures: the same `TurnRunner` the
server uses runs the turn against the in-memory store, and every event is
serialized as the server would before sending it; only the transport is
missing. Imported lazily: it loads AgentScope into the calling process.
"""

from __future__ import annotations

import statistics
import time

from bench.workload import invoke_request
from meshscope.services.catalog import load_definition
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.messages import message_to_msg
from meshscope.services.runtime.models.factory import parse_model_spec
from meshscope.services.runtime.servicer import ANONYMOUS_USER
from meshscope.services.runtime.state import InMemorySessionStore
from meshscope.services.runtime.turn import Turn, TurnRunner


class InProcessAgent:
    """One hosted agent and a turn runner, as a server process holds them."""

    def __init__(self, agent: str, text: str) -> None:
        definition = load_definition(agent)
        spec = parse_model_spec("scripted") if definition.needs_model else None
        self.hosted = HostedAgent(definition, spec)
        self.runner = TurnRunner(InMemorySessionStore())
        self.text = text

    async def turn(self, session_id: str) -> int:
        """Run one turn; the wire bytes its events serialize to."""
        request = invoke_request(self.hosted.name, self.text, session_id)
        turn = Turn(self.hosted, message_to_msg(request.input, "input"), session_id, ANONYMOUS_USER)
        return sum([len(event.SerializeToString()) async for event in self.runner.run(turn)])

    async def cpu_ms_per_turn(self, warmup: int, batches: int, turns: int) -> list[float]:
        """Process CPU ms per turn, one figure per batch of sequential turns."""
        for i in range(warmup):
            await self.turn(f"inproc-warmup-{i}")
        per_batch = []
        for batch in range(batches):
            start = time.process_time()
            for i in range(turns):
                await self.turn(f"inproc-{batch}-{i}")
            per_batch.append((time.process_time() - start) * 1000 / turns)
        return per_batch


async def median_cpu_ms(agent: str, text: str, *, warmup: int, batches: int, turns: int) -> float:
    """Median over the batches of `InProcessAgent.cpu_ms_per_turn`."""
    return statistics.median(await InProcessAgent(agent, text).cpu_ms_per_turn(warmup, batches, turns))
