"""`meshscope serve orchestrator`: the orchestrator process."""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.config import ConfigError
from meshscope.discovery.config import DiscoverySettings
from meshscope.discovery.watcher import ConsulWatcher, StaticWatcher, Watcher
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.pipelines import PipelineError, load_mesh
from meshscope.orchestrator.service import OrchestratorServer
from meshscope.process import serve_process


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
    return OrchestratorServer(mesh, watcher_for(discovery), settings)


def watcher_for(discovery: DiscoverySettings) -> Watcher:
    """The watcher of the configured backend: Consul's health queries, DNS names, or fixed endpoints."""
    if discovery.backend == "consul":
        return ConsulWatcher(discovery.consul)
    if discovery.backend == "dns":
        from meshscope.discovery.dns import DnsWatcher

        return DnsWatcher(discovery.dns)
    return StaticWatcher(discovery.static)


def run(args: ServeArgs) -> int:
    """Serve until SIGTERM/SIGINT; exit 2 with one line on bad configuration or a bad mesh file."""
    return serve_process(
        lambda: (build(args), None), refused=(ConfigError, PipelineError), service="meshscope-orchestrator"
    )
