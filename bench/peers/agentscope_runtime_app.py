"""The AgentScope Runtime peer: an `AgentApp` streaming the echo workload over SSE.

Runs in its own virtualenv (`make peers-venv`: agentscope-runtime 1.1.6.post2 with agentscope
1.0.21 and a2a-sdk below 1.0, pinned in bench/peers/agentscope-runtime.txt), never in
meshscope's, which has agentscope 2.x and a2a-sdk 1.x. It imports only that venv's packages,
the standard library and two stdlib-only bench modules (PYTHONPATH is the repository root):

    .build/peers-venv/bin/python bench/peers/agentscope_runtime_app.py [--fault KIND]
    # agentscope-runtime runs on uvloop + httptools
    # meshscope: serving agentscope-runtime on 127.0.0.1:PORT

The app is written as the runtime's guide writes one: `AgentApp(...)` and a query function
registered with `@app.query(framework="agentscope")` that yields `(Msg, last)` pairs, each Msg
holding the reply so far (what AgentScope 1.0's `stream_printing_messages` yields for a
streaming agent). There is no model and no agent object, as meshscope's echo agent has none:
the reply is the input's words in CHUNKS chunks of 4 (bench/echo_text.py), so the runtime's
own path — request parsing, the stream adapter turning messages into content deltas, the
response envelope, SSE framing — is what is measured. `POST /process` with an `AgentRequest`
answers with SSE events: the response created and in progress, the message in progress, one
`content` event per delta (`delta: true`), the content and the message completed, and the
response `completed` (its output holding the whole message).

The runtime's defaults are kept (its A2A, Responses-API and AG-UI adapters, CORS, the local
interrupt backend), except uvicorn's access log, which is off here as it is for every server
in the run (bench/peers/asgi.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agentscope.message import Msg, TextBlock
from agentscope_runtime.engine.app import AgentApp

from bench.echo_text import FAULTS, faulty_chunks
from bench.peers.asgi import serve_asgi

WHAT = "agentscope-runtime"


def input_text(msgs: Any) -> str:
    """The text of the request's input messages (AgentScope `Msg`s, or one)."""
    messages = msgs if isinstance(msgs, list) else [msgs]
    return " ".join(m.get_text_content() or "" for m in messages)


def build_app(fault: str = "none") -> AgentApp:
    """The echo `AgentApp`: `POST /process` streams the reply to the input's text.

    With a `fault` (`bench.echo_text.FAULTS`) the reply is wrong; `no-end` makes the query
    function raise after the last delta, so the response ends `failed`, not `completed`.
    """
    faulty_chunks("", fault)  # an unknown fault fails at start
    app = AgentApp(app_name="echo", app_description="Streams its input back in 20 chunks of 4 words.")

    @app.query(framework="agentscope")  # type: ignore[untyped-decorator]
    async def query_func(self: Any, msgs: Any, request: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        chunks, end = faulty_chunks(input_text(msgs), fault)
        so_far = ""
        msg = Msg(name="echo", content=[TextBlock(type="text", text="")], role="assistant")
        for i, chunk in enumerate(chunks):
            so_far += chunk
            msg.content = [TextBlock(type="text", text=so_far)]
            yield msg, i == len(chunks) - 1
        if not end:
            raise RuntimeError("the echo stopped before its end (--fault no-end)")

    return app


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The AgentScope Runtime echo app (bench/peers).")
    parser.add_argument("--fault", choices=sorted(FAULTS), default="none", help="stream a wrong reply")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    serve_asgi(lambda _address: build_app(args.fault), WHAT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
