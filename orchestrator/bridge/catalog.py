"""What the bridge serves: the orchestrator's agents and pipelines, asked for and reused a while.

Every pipeline and every agent the orchestrator knows is an A2A agent of the bridge. The list is
read with `ListAgents` and `ListPipelines` and reused for MESHSCOPE_BRIDGE_CATALOG_TTL_S, so a
card or a call costs no orchestrator round trip; a name not in the list makes one fresh read
(at most one a second), so a pipeline added to a restarted orchestrator is found at once.
While the orchestrator cannot be reached the last list is kept; with none yet, lookups raise
`CatalogUnavailable` (the routes answer 503).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from meshscope.orchestrator.client import OrchestratorClient

__all__ = ["Catalog", "CatalogUnavailable", "Target"]

_RETRY_UNKNOWN_S = 1.0
"""How soon an unknown name may cause another read of the list."""


class CatalogUnavailable(RuntimeError):
    """The orchestrator could not be asked and no earlier list is kept (the message says where)."""


@dataclass(frozen=True)
class Skill:
    id: str
    description: str = ""


@dataclass(frozen=True)
class Target:
    """One A2A agent of the bridge: a pipeline or an agent of the mesh."""

    name: str
    kind: str
    """"agent", or the pipeline's kind ("sequential", "team", "fanout", "route")."""
    description: str
    skills: tuple[Skill, ...]
    agents: tuple[str, ...]
    """The agents it may call (itself, for an agent)."""
    version: str = ""


class Catalog:
    """The orchestrator's agents and pipelines (see the module docstring)."""

    def __init__(self, orchestrator: OrchestratorClient, ttl_s: float) -> None:
        self._orchestrator = orchestrator
        self._ttl_s = ttl_s
        self._targets: dict[str, Target] | None = None
        self._pipelines: tuple[str, ...] = ()
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def targets(self) -> dict[str, Target]:
        """Every target by name (read again when older than the TTL)."""
        if self._targets is None or time.monotonic() - self._read_at > self._ttl_s:
            await self._refresh()
        assert self._targets is not None
        return self._targets

    async def get(self, name: str) -> Target | None:
        """The target `name`, or None when the orchestrator knows no such agent or pipeline."""
        targets = await self.targets()
        if name not in targets and time.monotonic() - self._read_at > _RETRY_UNKNOWN_S:
            await self._refresh(force=True)
            targets = await self.targets()
        return targets.get(name)

    async def default(self, configured: str | None) -> Target | None:
        """The root's target: `configured`, else the first pipeline by name, else the first agent."""
        targets = await self.targets()
        if configured:
            return await self.get(configured)
        if self._pipelines:
            return targets[self._pipelines[0]]
        return next(iter(targets.values()), None)

    async def _refresh(self, force: bool = False) -> None:
        async with self._lock:
            if not force and self._targets is not None and time.monotonic() - self._read_at <= self._ttl_s:
                return  # another caller read it while this one waited
            try:
                agents = await self._orchestrator.list_agents(timeout=5.0)
                pipelines = await self._orchestrator.list_pipelines(timeout=5.0)
            except grpc.aio.AioRpcError as exc:
                self._read_at = time.monotonic()  # keep the last list; ask again after the TTL
                if self._targets is None:
                    raise CatalogUnavailable(
                        f"the orchestrator at {self._orchestrator.target} did not answer: {exc.code().name}"
                        f" ({exc.details()}); start one (meshscope serve orchestrator)"
                        " or set MESHSCOPE_ORCHESTRATOR"
                    ) from None
                return
            targets: dict[str, Target] = {}
            skills_of: dict[str, tuple[Skill, ...]] = {}
            for agent in agents.agents:
                skills = tuple(Skill(s.id, s.description) for s in agent.card.skills)
                skills_of[agent.name] = skills
                targets[agent.name] = Target(
                    name=agent.name,
                    kind="agent",
                    description=agent.card.description or f"The {agent.name} agent of the mesh.",
                    skills=skills or (Skill(agent.name),),
                    agents=(agent.name,),
                    version=agent.card.version,
                )
            names = []
            for pipeline in pipelines.pipelines:
                names.append(pipeline.name)
                targets[pipeline.name] = Target(
                    name=pipeline.name,
                    kind=pipeline.kind,
                    description=pipeline.description or f"The {pipeline.name} pipeline ({pipeline.kind}).",
                    skills=(Skill(pipeline.name, pipeline.description),),
                    agents=tuple(pipeline.agents),
                )
            self._targets = targets
            self._pipelines = tuple(names)
            self._read_at = time.monotonic()
