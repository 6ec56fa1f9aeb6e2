"""Process entry point for agent services (`meshscope serve agents`, `python -m meshscope.services.<name>`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

from meshscope.config import Config, ConfigError
from meshscope.discovery.config import DiscoverySettings
from meshscope.services.catalog import load_definition, parse_agent_list
from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.flags import add_serve_flags
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.models.factory import effective_spec
from meshscope.services.runtime.redis_store import StoreSettings
from meshscope.services.runtime.registration import register_server
from meshscope.services.runtime.server import AgentServer, serve_until_signal


def configure_logging() -> None:
    """Log to stderr at MESHSCOPE_LOG_LEVEL (default INFO)."""
    level = Config().string("MESHSCOPE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else "INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    """Serve until SIGTERM/SIGINT; exit 2 with one line on bad configuration."""
    try:
        server, discovery = build_server(agent_names, args)
    except ConfigError as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    configure_logging()

    async def register(started: AgentServer) -> None:
        await register_server(started, discovery)

    try:
        asyncio.run(
            serve_until_signal(server, announce=lambda line: print(line, flush=True), on_started=register)
        )
    except OSError as exc:
        print(f"meshscope: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


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
