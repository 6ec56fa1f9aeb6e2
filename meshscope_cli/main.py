"""`meshscope`: one console script for every process and client of the mesh.

Commands so far:
  meshscope serve agents --agents a,b [--port P] [--host H] [--model SPEC] [--advertise-host H]
  meshscope agents [--json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from discovery.errors import DiscoveryConfigError
from meshscope_cli import agents as agents_command
from services.catalog import parse_agent_list
from services.runtime import entry
from services.runtime.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshscope", description="A service mesh of gRPC AgentScope agents."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run one mesh process")
    serve_what = serve.add_subparsers(dest="what", required=True, metavar="WHAT")
    agents = serve_what.add_parser("agents", help="serve one or more agents from one gRPC server")
    agents.add_argument("--agents", required=True, help="comma-separated agent names, e.g. analyst,writer")
    entry.add_serve_flags(agents)
    listing = commands.add_parser("agents", help="list the mesh's agents, replicas, health and meta")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "agents":
        try:
            return agents_command.run(args.json)
        except DiscoveryConfigError as exc:
            print(f"meshscope: {exc}", file=sys.stderr)
            return 2
    if args.command == "serve" and args.what == "agents":
        try:
            names = parse_agent_list(args.agents)
        except ConfigError as exc:
            print(f"meshscope: {exc}", file=sys.stderr)
            return 2
        return entry.run(names, args)
    return 2  # unreachable: argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
