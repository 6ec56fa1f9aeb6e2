"""The raw gRPC peers: a `grpc.aio` echo server (1 hop) and a relay in front of it (2 hops).

They speak the tiny wire format of `bench/peers/tiny.proto`, not meshscope's: one `Chunk` per
piece of text (a string and nothing else), then one terminal `Chunk` with `done` and the whole
text. No validation, no state, no envelope fields: what grpc.aio itself costs per streamed
message, the floor any Python gRPC mesh stands on.

- echo: `Stream(Prompt)` yields the echo workload's CHUNKS deltas, then the terminal chunk.
- relay: `Stream(Prompt)` opens the same call on an upstream echo server (one channel shared
  by every call, opened at start) and yields each chunk as it arrives, as a bare proxy does.

Both serve with the agent runtime's server options (message limits, keepalive; the same as
bench/baseline_server.py), and run in their own process:

    python -m bench.peers.raw_grpc echo [--fault KIND]      # ready: meshscope: serving raw-echo on ADDR
    python -m bench.peers.raw_grpc relay UPSTREAM_ADDRESS    # ready: meshscope: serving raw-relay on ADDR

`--fault` makes the echo server stream a wrong reply (`bench.echo_text.FAULTS`), so that tests
can show the load generator's checks catch it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence

import grpc

from bench.baseline_server import serve
from bench.echo_text import FAULTS, faulty_chunks
from bench.peers import tiny_pb2, tiny_pb2_grpc

ECHO_READY = "meshscope: serving raw-echo on"
RELAY_READY = "meshscope: serving raw-relay on"


class TinyEchoServicer(tiny_pb2_grpc.TinyEchoServicer):
    """Streams the echo workload as tiny chunks (or a wrong reply, with a fault)."""

    def __init__(self, fault: str = "none") -> None:
        faulty_chunks("", fault)  # reject an unknown fault at start, not on the first call
        self._fault = fault

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: tiny_pb2.Prompt, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tiny_pb2.Chunk]:
        chunks, end = faulty_chunks(request.text, self._fault)
        for chunk in chunks:
            yield tiny_pb2.Chunk(delta=chunk)
        if end:
            yield tiny_pb2.Chunk(done=True, text="".join(chunks))


class TinyRelayServicer(tiny_pb2_grpc.TinyEchoServicer):
    """Forwards each call to one upstream echo server and streams its chunks back as they come."""

    def __init__(self, upstream: str) -> None:
        self._channel = grpc.aio.insecure_channel(upstream)
        self._stub = tiny_pb2_grpc.TinyEchoStub(self._channel)

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: tiny_pb2.Prompt, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tiny_pb2.Chunk]:
        async for chunk in self._stub.Stream(request):
            yield chunk


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.raw_grpc", description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    echo = sub.add_parser("echo", help="the 1-hop echo server")
    echo.add_argument("--fault", choices=sorted(FAULTS), default="none", help="stream a wrong reply")
    relay = sub.add_parser("relay", help="the 2-hop relay in front of an echo server")
    relay.add_argument("upstream", metavar="UPSTREAM_ADDRESS", help="the echo server's host:port")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    echo = args.role == "echo"

    def register(server: grpc.aio.Server) -> None:
        # Called inside the running loop: the relay's channel must belong to it.
        servicer = TinyEchoServicer(args.fault) if echo else TinyRelayServicer(args.upstream)
        tiny_pb2_grpc.add_TinyEchoServicer_to_server(servicer, server)

    asyncio.run(serve(register, ECHO_READY if echo else RELAY_READY))
    return 0


if __name__ == "__main__":
    sys.exit(main())
