"""`meshscope`: one console script for every process and client of the mesh.

Commands so far:
  meshscope serve agents --agents a,b [--port P] [--host H] [--model SPEC] [--advertise-host H]
  meshscope serve orchestrator [-f FILE] [--port P] [--host H]
  meshscope agents [--json]
  meshscope run TARGET TEXT [--session S] [--user U] [--timeout SECONDS]
  meshscope pipelines
  meshscope sessions list [--user U] | show SESSION | delete SESSION
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from discovery.errors import DiscoveryConfigError
from meshscope_cli import agents as agents_command
from meshscope_cli import runs as run_commands
from orchestrator import entry as orchestrator_entry
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
    orchestrator = serve_what.add_parser("orchestrator", help="serve the orchestrator")
    orchestrator.add_argument("-f", "--file", dest="mesh_file", help="mesh file (default mesh.yaml)")
    orchestrator.add_argument("--port", type=int, help="port (default 50050; 0: any free port)")
    orchestrator.add_argument("--host", help="address to bind (default 127.0.0.1)")
    run = commands.add_parser("run", help="run an agent or a pipeline and stream its steps")
    run.add_argument("target", help="an agent or pipeline name")
    run.add_argument("text", help="the input message")
    run.add_argument("--session", default="", help="session id (continue a conversation)")
    run.add_argument("--user", default="", help="user id")
    run.add_argument("--timeout", type=float, help="deadline of the whole run, in seconds")
    commands.add_parser("pipelines", help="list the orchestrator's pipelines")
    sessions = commands.add_parser("sessions", help="list, show or delete sessions")
    session_actions = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    session_list = session_actions.add_parser("list", help="a user's sessions, newest first")
    session_list.add_argument("--user", default="", help="user id (default: anonymous)")
    session_show = session_actions.add_parser("show", help="a session's cross-agent transcript")
    session_show.add_argument("session")
    session_delete = session_actions.add_parser("delete", help="delete a session: states, transcript, locks")
    session_delete.add_argument("session")
    listing = commands.add_parser("agents", help="list the mesh's agents, replicas, health and meta")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _not_utf8(args: argparse.Namespace) -> str | None:
    """The first argument that cannot be encoded (bytes the shell passed that are not UTF-8)."""
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return name
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`meshscope sessions list | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    bad = _not_utf8(args)
    if bad is not None:  # checked once here, for every command, before anything goes on the wire
        print(f"meshscope: {bad.upper()} is not valid UTF-8", file=sys.stderr)
        return 2
    if args.command == "agents":
        try:
            return agents_command.run(args.json)
        except DiscoveryConfigError as exc:
            print(f"meshscope: {exc}", file=sys.stderr)
            return 2
    if args.command == "run":
        return run_commands.run(args.target, args.text, args.session, args.user, args.timeout)
    if args.command == "pipelines":
        return run_commands.pipelines()
    if args.command == "sessions":
        return run_commands.sessions(args.action, args.user if args.action == "list" else args.session)
    if args.command == "serve" and args.what == "orchestrator":
        return orchestrator_entry.run(orchestrator_entry.ServeArgs(args.mesh_file, args.port, args.host))
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
