"""`meshscope agents`: every agent in the mesh, its replicas, their health and meta.

The Consul client (py-consul, aiohttp) is imported only when discovery is Consul: with
`MESHSCOPE_DISCOVERY=static` the command reads its configuration and prints, nothing more; with
`dns` it resolves each agent's name once (health is the platform's readiness: "passing").
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Mapping

from meshscope.discovery.config import DiscoverySettings
from meshscope.discovery.model import Instance, replica_id_for

COLUMNS = ("AGENT", "REPLICA", "ADDRESS", "HEALTH", "SKILLS", "DESCRIPTION")


def _static(settings: DiscoverySettings) -> dict[str, tuple[Instance, ...]]:
    return {
        agent: tuple(Instance(agent, replica_id_for(agent, h, p), h, p, health="unchecked") for h, p in pairs)
        for agent, pairs in sorted(settings.static.items())
    }


class DnsUnanswered(Exception):
    """DNS did not answer for some agent's name (its message says which)."""


async def _resolved(settings: DiscoverySettings) -> dict[str, tuple[Instance, ...]]:
    """One resolution of every agent's DNS name; `DnsUnanswered` when a resolver did not answer."""
    from meshscope.discovery.dns import DnsWatcher

    logging.getLogger("meshscope.discovery").setLevel(logging.ERROR)  # one line, below, says it
    watcher = DnsWatcher(settings.dns)
    await watcher.resolve_all()
    if watcher.failure is not None:
        raise DnsUnanswered(watcher.failure)
    return {agent: watcher.instances(agent) for agent in sorted(settings.dns.services)}


def render_table(agents: Mapping[str, tuple[Instance, ...]]) -> str:
    """Replicas as an aligned text table, one row each."""
    rows = [COLUMNS]
    for name, instances in agents.items():
        for i in instances:
            rows.append(
                (
                    name,
                    i.replica_id,
                    i.address,
                    i.health,
                    i.meta.get("skills", ""),
                    i.meta.get("description", ""),
                )
            )
        if not instances:
            rows.append((name, "-", "-", "no replicas", "", ""))
    widths = [max(len(row[c]) for row in rows) for c in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def render_json(agents: Mapping[str, tuple[Instance, ...]]) -> str:
    return json.dumps(
        {
            name: [
                {"replica": i.replica_id, "address": i.address, "health": i.health, "meta": dict(i.meta)}
                for i in instances
            ]
            for name, instances in agents.items()
        },
        indent=2,
    )


def run(as_json: bool) -> int:
    """Print the mesh's agents; exit 1 with one line when Consul cannot be asked."""
    settings = DiscoverySettings.from_env()
    if settings.backend == "static":
        agents = _static(settings)
    elif settings.backend == "dns":
        try:
            agents = asyncio.run(_resolved(settings))
        except DnsUnanswered as exc:
            print(f"meshscope: DNS did not answer ({exc})", file=sys.stderr)
            return 1
    else:
        from meshscope.discovery.consul_client import UNREACHABLE, describe_error
        from meshscope.discovery.watcher import ReadDenied, list_replicas

        try:
            agents = asyncio.run(list_replicas(settings.consul))
        except ReadDenied as exc:
            print(f"meshscope: {exc}", file=sys.stderr)
            return 1
        except UNREACHABLE as exc:
            print(
                f"meshscope: Consul at {settings.consul.http_addr} is unreachable: {describe_error(exc)}",
                file=sys.stderr,
            )
            return 1
        except Exception as exc:
            print(
                f"meshscope: Consul at {settings.consul.http_addr} refused: {describe_error(exc)}",
                file=sys.stderr,
            )
            return 1
    if as_json:
        print(render_json(agents))
    elif not agents:
        print("no agents registered")
    else:
        print(render_table(agents))
    for line in split_session_warnings(agents):
        print(f"meshscope: warning: {line}", file=sys.stderr)
    return 0


def split_session_warnings(agents: Mapping[str, tuple[Instance, ...]]) -> list[str]:
    """One line per agent whose replicas keep sessions in their own memory (registration meta)."""
    return [
        f"{name} has {len(local)} replicas keeping sessions in their own memory: a session's turns split "
        "between them; set REDIS_URL on every replica (meshscope up: up.redis: true)"
        for name, instances in agents.items()
        if len(local := [i for i in instances if i.meta.get("sessions") == "memory"]) > 1
    ]
