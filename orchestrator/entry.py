"""`meshscope serve orchestrator`: the orchestrator process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

from meshscope.config import Config, ConfigError
from meshscope.discovery.config import DiscoverySettings
from meshscope.discovery.watcher import ConsulWatcher, StaticWatcher, Watcher
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.pipelines import PipelineError, load_mesh
from meshscope.orchestrator.service import OrchestratorServer


@dataclass
class ServeArgs:
    mesh_file: str | None
    port: int | None
    host: str | None


def build(args: ServeArgs) -> OrchestratorServer:
    settings = OrchestratorSettings.from_env().with_overrides(
        mesh_file=args.mesh_file, port=args.port, host=args.host
    )
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"--port {settings.port} is not a port (0-65535)")
    mesh = load_mesh(settings.mesh_file)
    discovery = DiscoverySettings.from_env()
    watcher: Watcher = (
        ConsulWatcher(discovery.consul) if discovery.backend == "consul" else StaticWatcher(discovery.static)
    )
    return OrchestratorServer(mesh, watcher, settings)


async def serve(server: OrchestratorServer) -> None:
    await server.start()
    print(f"meshscope: serving orchestrator on {server.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("meshscope: shutting down orchestrator", flush=True)
    await server.stop()


def run(args: ServeArgs) -> int:
    try:
        server = build(args)
    except (ConfigError, PipelineError) as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    level = Config().string("MESHSCOPE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else "INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(server))
    except OSError as exc:
        print(f"meshscope: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0
