"""`make demo`: the whole mesh up, and the seed's example questions asked through the A2A bridge.

1. `meshscope up -f mesh.yaml --detach`: Consul, six agent processes on the `local` model
   (SmolLM2-135M-Instruct, in-process on the CPU, offline), the orchestrator and the bridge, each its
   own process (a mesh already up from this folder is used as it is);
2. the seed's three examples, each a pipeline, asked with a2a-sdk's own client over the bridge's
   JSON-RPC streaming: `analysis` (analyst -> writer), `project` (the manager plans, the researcher and
   the coder work in parallel, the manager merges), `report` (analyst -> reporter); each step's text is
   printed as it streams, under a line naming the step, the agent and the replica that served it;
3. the mesh is left running, and the demo says how to use it and how to stop it (`meshscope down`).

`MESHSCOPE_MODEL` picks another model for every agent (`MESHSCOPE_MODEL=scripted make demo`: fast and
deterministic, no [local] extra needed); answers are kept short (MESHSCOPE_LOCAL_MAX_TOKENS=96 unless set).
`python -m meshscope.cli.demo -f FILE` runs it on another mesh file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from meshscope.cli.launch import meshscope_command

QUESTIONS = (
    ("analysis", "Compare gRPC and REST for calls between agent services."),
    ("project", "Plan a rate limiter for our public API."),
    ("report", "Report on running each agent as its own service."),
)
"""The seed's examples 1-3: a pipeline each, and a question for it."""


async def ask(bridge: str, pipeline: str, question: str) -> None:
    """Stream one task through the bridge, each step's text under its step, agent and replica."""
    import httpx
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import a2a_pb2

    config = ClientConfig(streaming=True, httpx_client=httpx.AsyncClient(timeout=600))
    client = await ClientFactory(config).create_from_url(f"{bridge}/agents/{pipeline}")
    print(f"\n=== {pipeline}: {question}", flush=True)
    message = a2a_pb2.Message(
        message_id=uuid.uuid4().hex, role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text=question)]
    )
    labels: dict[str, str] = {}
    current = ""
    try:
        async for item in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
            if item.HasField("artifact_update"):
                artifact = item.artifact_update.artifact
                if not item.artifact_update.append:
                    meta = artifact.metadata
                    labels[artifact.artifact_id] = (
                        f"[{meta['meshscope.step']}] {meta['meshscope.agent']} @ {meta['meshscope.replica']}"
                    )
                if artifact.artifact_id != current:  # parallel steps interleave: say whose text follows
                    current = artifact.artifact_id
                    print(f"\n--- {labels.get(current, current)}\n", end="", flush=True)
                print("".join(p.text for p in artifact.parts), end="", flush=True)
            elif item.HasField("status_update"):
                status = item.status_update.status
                if status.state == a2a_pb2.TASK_STATE_COMPLETED:
                    steps = item.status_update.metadata.fields["meshscope.steps"].number_value
                    print(f"\n=== {pipeline}: completed in {int(steps)} steps", flush=True)
                elif status.state == a2a_pb2.TASK_STATE_FAILED:
                    print(
                        f"\n=== {pipeline}: failed: {''.join(p.text for p in status.message.parts)}",
                        flush=True,
                    )
    finally:
        await client.close()


def _running_bridge(state: Path) -> str | None:
    from meshscope.cli.up import running

    data = running(state)
    return None if data is None else str(data["bridge"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meshscope.cli.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("-f", "--file", default="mesh.yaml", help="mesh file (default mesh.yaml)")
    args = parser.parse_args(argv)
    from meshscope.cli.up import state_dir

    os.environ.setdefault("MESHSCOPE_LOCAL_MAX_TOKENS", "96")
    state = state_dir()
    bridge = _running_bridge(state)
    if bridge is None:
        print(f"$ meshscope up -f {args.file} --detach", flush=True)
        started = subprocess.run(meshscope_command("up", "-f", args.file, "--detach"), check=False)
        if started.returncode != 0:
            return started.returncode
        bridge = _running_bridge(state)
        if bridge is None:
            print("demo: the mesh reported up but left no state file", file=sys.stderr)
            return 1
    else:
        model = json.loads((state / "up.json").read_text()).get("model", "the mesh file's")
        print(f"demo: using the mesh already up ({bridge}; model: {model}; meshscope down stops it)")
    for pipeline, question in QUESTIONS:
        asyncio.run(ask(bridge, pipeline, question))
    data = json.loads((state / "up.json").read_text())
    print(
        f"\nThe mesh is still up. Try it:\n"
        f"  curl -s {bridge}/agents/analysis/.well-known/agent-card.json\n"
        f"  MESHSCOPE_ORCHESTRATOR={data['orchestrator']} .venv/bin/meshscope run analysis "
        "'What is a service mesh?'\n"
        f"  .venv/bin/meshscope status\n"
        f"Stop it with: .venv/bin/meshscope down"
        + (f"  (MESHSCOPE_STATE_DIR={state})" if os.environ.get("MESHSCOPE_STATE_DIR") else ""),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
