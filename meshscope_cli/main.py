"""`meshscope`: one console script for every process and client of the mesh.

Commands so far:
  meshscope --version
  meshscope up [-f FILE] [--detach] | status | down
  meshscope serve agents --agents a,b [--port P] [--host H] [--model SPEC] [--advertise-host H]
  meshscope serve orchestrator [-f FILE] [--port P] [--host H]
  meshscope serve bridge [--port P] [--host H]
  meshscope agents [--json]
  meshscope run TARGET TEXT [--session S] [--user U] [--timeout SECONDS]
  meshscope pipelines
  meshscope sessions list [--user U] | show SESSION | delete SESSION

Start-up cost is paid per command (DESIGN.md §3): this module imports only the standard
library (and the serve flags, which are stdlib-only too), and each command imports what it
needs in its own branch of `_main`. `--help`,
`--version` and the orchestrator's clients (`run`, `pipelines`, `sessions`) never load
AgentScope, Redis, Consul or aiohttp; `agents` loads the Consul client only when discovery
is Consul. tests/integration/test_cli_startup.py holds each command to that.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from meshscope.services.runtime.flags import add_serve_flags

DISTRIBUTION = "meshscope"


class _PrintVersion(argparse.Action):
    """`--version`: print `meshscope <version>` and exit 0.

    The version is the installed distribution's (importlib.metadata), looked up only when
    asked for: importing importlib.metadata on every start would cost each command time.
    A checkout run without being installed has no metadata: one line on stderr, exit 1.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            parser.exit(1, f"meshscope: the {DISTRIBUTION} distribution is not installed: no version\n")
        print(f"meshscope {found}")  # on stdout, as argparse's own version action does
        parser.exit(0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshscope", description="A service mesh of gRPC AgentScope agents."
    )
    parser.add_argument("--version", action=_PrintVersion, help="print meshscope's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run one mesh process")
    serve_what = serve.add_subparsers(dest="what", required=True, metavar="WHAT")
    agents = serve_what.add_parser("agents", help="serve one or more agents from one gRPC server")
    agents.add_argument("--agents", required=True, help="comma-separated agent names, e.g. analyst,writer")
    add_serve_flags(agents)
    orchestrator = serve_what.add_parser(
        "orchestrator",
        help="serve the orchestrator",
        description="Serve the orchestrator: it finds agents in Consul (CONSUL_HTTP_ADDR, default "
        "127.0.0.1:8500) or MESHSCOPE_STATIC_ENDPOINTS (MESHSCOPE_DISCOVERY=static) and runs the mesh file's "
        "pipelines. Other settings: MESHSCOPE_* (docs/configuration.md).",
    )
    orchestrator.add_argument(
        "-f", "--file", dest="mesh_file", help="mesh file (default mesh.yaml; env MESHSCOPE_MESH_FILE)"
    )
    orchestrator.add_argument(
        "--port", type=int, help="port (default 50050; 0: any free port; env MESHSCOPE_ORCHESTRATOR_PORT)"
    )
    orchestrator.add_argument(
        "--host", help="address to bind (default 127.0.0.1; env MESHSCOPE_ORCHESTRATOR_HOST)"
    )
    bridge = serve_what.add_parser(
        "bridge",
        help="serve the A2A-over-HTTP bridge",
        description="Serve every pipeline and agent of the mesh as an A2A agent (docs/bridge.md). "
        "Finds the orchestrator at MESHSCOPE_ORCHESTRATOR (default 127.0.0.1:50050); "
        "the other settings are MESHSCOPE_BRIDGE_* (docs/configuration.md).",
    )
    bridge.add_argument(
        "--port", type=int, help="port (default 8080, MESHSCOPE_BRIDGE_PORT; 0: any free port)"
    )
    bridge.add_argument("--host", help="address to bind (default 127.0.0.1, MESHSCOPE_BRIDGE_HOST)")
    up_command = commands.add_parser(
        "up",
        help="run the whole mesh from a mesh file: Consul, agents, orchestrator, bridge",
        description="Start every process of a mesh file (Consul unless CONSUL_HTTP_ADDR is set, Redis when "
        "the file's up.redis is true, each agent process and replica, the orchestrator, the bridge), wait "
        "until all are healthy and print where they are. Ctrl-C stops everything. The state folder is "
        "MESHSCOPE_STATE_DIR (default .meshscope); MESHSCOPE_MODEL overrides every agent's model.",
    )
    up_command.add_argument(
        "-f", "--file", dest="mesh_file", default="mesh.yaml", help="mesh file (default mesh.yaml)"
    )
    up_command.add_argument(
        "--detach", action="store_true", help="run in the background; meshscope status / down manage it"
    )
    state_is = "Reads the state folder MESHSCOPE_STATE_DIR (default .meshscope)."
    commands.add_parser(
        "status", help="the processes of the mesh `meshscope up --detach` started", description=state_is
    )
    commands.add_parser("down", help="stop the mesh `meshscope up --detach` started", description=state_is)
    orchestrator_is = "Finds the orchestrator at MESHSCOPE_ORCHESTRATOR (default 127.0.0.1:50050)."
    run = commands.add_parser(
        "run",
        help="run an agent or a pipeline and stream its steps",
        description="Run an agent or a pipeline and stream each step's text, labelled by its step, agent and "
        f"replica. {orchestrator_is} Exit status: 0 done, 1 failed, 2 bad arguments, 130 Ctrl-C.",
    )
    run.add_argument("target", help="an agent or pipeline name")
    run.add_argument("text", help="the input message")
    run.add_argument(
        "--session", default="", help="session id, to continue a conversation (default: a new one)"
    )
    run.add_argument("--user", default="", help="user id (default: anonymous)")
    run.add_argument(
        "--timeout",
        type=float,
        help="deadline of the whole run, in seconds (default: the orchestrator's, 300)",
    )
    run.add_argument(
        "-v", "--verbose", action="store_true", help="also print every event of the run on stderr"
    )
    commands.add_parser("pipelines", help="list the orchestrator's pipelines", description=orchestrator_is)
    sessions = commands.add_parser(
        "sessions", help="list, show or delete sessions", description=orchestrator_is
    )
    session_actions = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    session_list = session_actions.add_parser("list", help="a user's sessions, newest first")
    session_list.add_argument("--user", default="", help="user id (default: anonymous)")
    session_show = session_actions.add_parser("show", help="a session's cross-agent transcript")
    session_show.add_argument("session")
    session_delete = session_actions.add_parser("delete", help="delete a session: states, transcript, locks")
    session_delete.add_argument("session")
    listing = commands.add_parser(
        "agents",
        help="list the mesh's agents, replicas, health and meta",
        description="Asks Consul (CONSUL_HTTP_ADDR, default 127.0.0.1:8500), or lists "
        "MESHSCOPE_STATIC_ENDPOINTS when MESHSCOPE_DISCOVERY=static; warns about replicas that keep sessions "
        "in their own memory.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    health = commands.add_parser(
        "health",
        help="exit 0 when a mesh process is serving (container health checks)",
        description="Checks an agent server or the orchestrator (host:port, the gRPC health service) or "
        "the bridge (an http(s):// URL, e.g. http://127.0.0.1:8080/healthz). Exit 0 serving, 1 not "
        "(one line why).",
    )
    health.add_argument("target", help="host:port, or an http(s):// URL")
    health.add_argument("--service", default="", help="a service or hosted agent (gRPC; default: the server)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
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
    # Each branch imports its command's modules itself: see the module docstring.
    if args.command == "agents":
        from meshscope.cli import agents as agents_command
        from meshscope.config import ConfigError

        try:
            return agents_command.run(args.json)
        except ConfigError as exc:
            print(f"meshscope: {exc}", file=sys.stderr)
            return 2
    if args.command in ("run", "pipelines", "sessions"):
        from meshscope.cli import runs as run_commands
        from meshscope.config import ConfigError

        try:
            if args.command == "run":
                return run_commands.run(
                    args.target, args.text, args.session, args.user, args.timeout, args.verbose
                )
            if args.command == "pipelines":
                return run_commands.pipelines()
            return run_commands.sessions(args.action, args.user if args.action == "list" else args.session)
        except ConfigError as exc:  # MESHSCOPE_GRPC_*, MESHSCOPE_TLS_*, MESHSCOPE_MESH_TOKEN
            print(f"meshscope: {exc}", file=sys.stderr)
            return 2
    if args.command == "health":
        from meshscope.cli import health as health_command

        return health_command.run(args.target, args.service, args.timeout)
    if args.command == "serve" and args.what == "orchestrator":
        from meshscope.orchestrator import entry as orchestrator_entry

        return orchestrator_entry.run(orchestrator_entry.ServeArgs(args.mesh_file, args.port, args.host))
    if args.command in ("up", "status", "down"):
        from meshscope.cli import up as up_commands

        if args.command == "up":
            return up_commands.up(args.mesh_file, args.detach)
        return up_commands.status() if args.command == "status" else up_commands.down()
    if args.command == "serve" and args.what == "bridge":
        from meshscope.orchestrator.bridge import entry as bridge_entry

        return bridge_entry.run(bridge_entry.ServeArgs(args.port, args.host))
    if args.command == "serve" and args.what == "agents":
        from meshscope.config import ConfigError
        from meshscope.services.catalog import parse_agent_list
        from meshscope.services.runtime import entry

        try:
            names = parse_agent_list(args.agents)
        except ConfigError as exc:
            print(f"meshscope: {exc}", file=sys.stderr)
            return 2
        return entry.run(names, args)
    return 2  # unreachable: argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
