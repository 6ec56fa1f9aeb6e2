"""Process entry point for agent services: `meshscope serve agents`, `python -m meshscope.services.<name>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from meshscope.config import ConfigError
from meshscope.discovery.config import DiscoverySettings
from meshscope.process import serve_process
from meshscope.server import Hook
from meshscope.services.catalog import load_definition, parse_agent_list
from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.flags import add_serve_flags
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.models.factory import effective_spec
from meshscope.services.runtime.registration import register_server, registered_replica_ids
from meshscope.services.runtime.server import AgentServer
from meshscope.services.runtime.stores import StoreSettings


def build_server(
    agent_names: Sequence[str], args: argparse.Namespace
) -> tuple[AgentServer, DiscoverySettings]:
    """Validate everything a process needs before it binds anything."""
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port (0-65535)")
    settings = ServerSettings.from_env().with_overrides(port=args.port, host=args.host)
    hosted = []
    for name in agent_names:
        definition = load_definition(name)
        spec = effective_spec(args.model or definition.model) if definition.needs_model else None
        hosted.append(HostedAgent(definition, spec))
    discovery = DiscoverySettings.from_env()
    if args.advertise_host:
        discovery = replace(discovery, advertise_host=args.advertise_host)
    stores = StoreSettings.from_env()
    server = AgentServer(
        hosted, settings, stores.open(), lock_ttl_s=stores.lock_ttl_s, lock_wait_s=stores.lock_wait_s
    )
    return server, discovery


def run(agent_names: Sequence[str], args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT, registered in discovery; exit 2 with one line on bad configuration."""

    built: list[tuple[AgentServer, DiscoverySettings]] = []

    def build() -> tuple[AgentServer, Hook]:
        server, discovery = build_server(agent_names, args)
        built.append((server, discovery))
        return server, lambda: register_server(server, discovery)

    return serve_process(
        build, service="meshscope-agents", replica_ids=lambda: registered_replica_ids(*built[0])
    )


def main(agent_names: Sequence[str] | None, argv: Sequence[str], prog: str) -> int:
    """Parse flags, then serve `agent_names` (or `--agents` when None)."""
    parser = argparse.ArgumentParser(prog=prog, description="Serve agents over gRPC.")
    if agent_names is None:
        parser.add_argument("--agents", required=True, help="comma-separated agent names")
    add_serve_flags(parser)
    args = parser.parse_args(argv)
    try:
        names = list(agent_names) if agent_names is not None else parse_agent_list(args.agents)
    except ConfigError as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    return run(names, args)
