"""`make demo`: start an agent service and stream replies from it.

It starts `meshscope serve agents --agents analyst,writer` on a free port
(a real separate process) on the `local` model (SmolLM2-135M-Instruct,
in-process on the CPU, offline), streams two turns of one session from the
analyst (the second sees the first), a turn that would want the analyst's
tool (a model this small answers in text instead), one turn from the writer
in the same process, then stops the service with SIGTERM.

`MESHSCOPE_MODEL` picks another model, e.g. `MESHSCOPE_MODEL=scripted make demo`
(deterministic, no [local] extra needed); `MESHSCOPE_LOCAL_*` tune the local one.
"""

from __future__ import annotations

import asyncio
import os
import sys

from meshscope.cli.launch import LaunchError, launch, meshscope_command
from meshscope.codec import StreamContext
from meshscope.services.runtime.client import AgentClient


async def _stream(client: AgentClient, agent: str, text: str, session: str) -> None:
    print(f"\n> {agent} <- {text!r}")
    print("  ", end="", flush=True)
    stream = StreamContext()  # events name their agent only when it changes
    async for event in client.invoke(agent, text, session_id=session, user_id="demo"):
        kind = stream.follow(event)
        if kind == "text_delta" and stream.agent == agent:
            print(event.text_delta.delta, end="", flush=True)
        elif kind == "tool_call_end":
            print(f"[tool call {event.tool_call_end.tool_call_id}] ", end="", flush=True)
        elif kind == "reply_end" and event.agent == agent:
            usage = event.reply_end.message.usage
            print(f"\n  ({event.sequence} events, {usage.output_tokens} output tokens)")


async def _demo(address: str) -> None:
    async with AgentClient(address) as client:
        card = await client.get_card("analyst")
        print(f"agent card: {card.name} — {card.description} (model {card.model})")
        await _stream(client, "analyst", "How should we split a monolith of agents?", "demo-1")
        await _stream(client, "analyst", "And what about their state?", "demo-1")
        await _stream(client, "analyst", "Summarise these numbers: 3, 5, 8, 13. #tool", "demo-2")
        await _stream(client, "writer", "Write one line about service meshes.", "demo-1")


def main() -> int:
    # No Consul in this demo yet: the service is reached at the address it prints.
    env = dict(os.environ, MESHSCOPE_SHUTDOWN_PAUSE_S="0", PYTHONUNBUFFERED="1", MESHSCOPE_DISCOVERY="static")
    env.setdefault("MESHSCOPE_MODEL", "local")
    # Short answers: the demo shows streaming, not essays (MESHSCOPE_LOCAL_MAX_TOKENS overrides).
    env.setdefault("MESHSCOPE_LOCAL_MAX_TOKENS", "96")
    print("$ meshscope serve agents --agents analyst,writer --port 0")
    try:
        service = launch(
            meshscope_command("serve", "agents", "--agents", "analyst,writer", "--port", "0"),
            env,
            echo=lambda line: print(f"  | {line}"),
        )
    except LaunchError as exc:
        print(f"demo: the agent service did not start: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(_demo(service.address))
        return 0
    finally:
        status = service.stop()
        print(f"\nagent service stopped (exit status {status})")


if __name__ == "__main__":
    sys.exit(main())
