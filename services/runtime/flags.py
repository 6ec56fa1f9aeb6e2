"""The command-line flags of an agent-service process, apart from the runtime they configure.

`meshscope`'s parser adds them to `serve agents` on every start, `--help` included; keeping
them here (standard library only) is what lets the CLI build its parser without loading
AgentScope, Redis or Consul (DESIGN.md §3).
"""

from __future__ import annotations

import argparse


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every agent-service entry point accepts."""
    parser.add_argument("--port", type=int, help="port to serve on (0: any free port); env MESHSCOPE_PORT")
    parser.add_argument("--host", help="address to bind; env MESHSCOPE_HOST (default 127.0.0.1)")
    parser.add_argument(
        "--model", help="model spec for every hosted agent, e.g. scripted or openai:gpt-4o-mini"
    )
    parser.add_argument(
        "--advertise-host",
        help="address other processes reach this replica at; env MESHSCOPE_ADVERTISE_HOST",
    )
