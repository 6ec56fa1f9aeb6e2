"""Pipelines: declared in the mesh file (YAML) or built in Python, validated at start.

Kinds (docs/architecture.md, "Orchestrator"; the seed's examples):
  sequential  steps: [agent-or-pipeline, ...]   each step gets the previous step's final message
  team        manager: A, workers: [B, C]       manager plans, workers run in parallel on the plan,
                                                manager synthesises their results
  fanout      agents: [A, B], aggregator: C?    same input to all at once; optional summary by C
  route       router: R, choices: [A, B]        R's reply names the next agent among the choices

A mesh file:

    agents:            # the agents of the mesh (what pipelines may call)
      analyst: {model: local, process: team}     # `meshscope up`: model spec, process group,
      writer: {process: team}                    # replicas (the orchestrator reads only names)
      researcher: {replicas: 2}
    pipelines:
      analysis:
        kind: sequential
        description: analyst, then writer
        steps: [analyst, writer]
    up:                # `meshscope up` only: Redis for shared sessions, the ports
      redis: true
      ports: {orchestrator: 50050, bridge: 8080, consul: 8500, redis: 6380, agents: 50051}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("sequential", "team", "fanout", "route")


class PipelineError(ValueError):
    """A mesh-file error: where it is and what is wrong, in one line."""


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline."""

    name: str
    kind: str
    description: str = ""
    steps: tuple[str, ...] = ()
    manager: str = ""
    workers: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    aggregator: str = ""
    router: str = ""
    choices: tuple[str, ...] = ()

    def referenced(self) -> tuple[str, ...]:
        """Every agent or pipeline name this pipeline calls, in order."""
        names = (
            *self.steps,
            self.manager,
            *self.workers,
            *self.agents,
            self.aggregator,
            self.router,
            *self.choices,
        )
        return tuple(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True)
class AgentSpec:
    """How `meshscope up` runs an agent (the orchestrator needs only its name)."""

    name: str
    model: str | None = None
    """Its model spec; None: the agent's own default."""
    replicas: int = 1
    process: str | None = None
    """The process group it shares with the agents naming the same one; None: a process of its own."""


PORT_NAMES = ("consul", "redis", "orchestrator", "bridge", "agents")
DEFAULT_PORTS: Mapping[str, int] = {
    "consul": 8500, "redis": 6380, "orchestrator": 50050, "bridge": 8080, "agents": 50051,
}  # fmt: skip
"""DESIGN.md §11's addresses; `agents` is the first agent process's port (the next count up; 0: any).
Redis's is 6380, not 6379: the mesh's own Redis must not collide with one the machine already runs."""


@dataclass(frozen=True)
class UpSpec:
    """The `up:` section: what else `meshscope up` starts, and on which ports."""

    redis: bool = False
    """Start a redis-server and give every agent and the bridge REDIS_URL (sessions shared by replicas)."""
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))


@dataclass(frozen=True)
class MeshFile:
    """A mesh file: its agents and pipelines (what the orchestrator needs), and how `meshscope up` runs it."""

    path: str
    agents: tuple[str, ...]
    pipelines: Mapping[str, Pipeline] = field(default_factory=dict)
    specs: Mapping[str, AgentSpec] = field(default_factory=dict)
    """Every agent's `AgentSpec` by name (`parse_mesh` fills it; a default one for agents not in it)."""
    up: UpSpec = field(default_factory=UpSpec)

    def spec(self, agent: str) -> AgentSpec:
        return self.specs.get(agent) or AgentSpec(agent)


_FIELDS: dict[str, dict[str, type]] = {
    "sequential": {"steps": list},
    "team": {"manager": str, "workers": list},
    "fanout": {"agents": list, "aggregator": str},
    "route": {"router": str, "choices": list},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "sequential": ("steps",),
    "team": ("manager", "workers"),
    "fanout": ("agents",),
    "route": ("router", "choices"),
}


class _Located:
    """Line numbers of the YAML nodes, by path, for error messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines: dict[tuple[Any, ...], int] = {}
        self.data: Any = None
        """The document itself (safe_load): parsed under the same error handling as the nodes."""
        try:
            root = yaml.compose(text)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # also what safe_load refuses: !!python tags, a list as a key
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else source
            raise PipelineError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self._walk(value, (*path, key.value))
                self.lines[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def error(self, path: tuple[Any, ...], reason: str) -> PipelineError:
        line = self.lines.get(path) or self.lines.get(path[:-1]) or 0
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        where = f"{self.source}:{line}" if line else self.source
        return PipelineError(f"{where}: {dotted}: {reason}")


def _names(value: Any, path: tuple[Any, ...], at: _Located, *, unique: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise at.error(path, "must be a non-empty list of names")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise at.error((*path, index), f"must be a name, got {item!r}")
        if unique and item in value[:index]:
            raise at.error(
                (*path, index),
                f"{item!r} is listed twice (parallel turns of one agent in one session would collide)",
            )
    return tuple(value)


def _pipeline(name: str, spec: Any, at: _Located) -> Pipeline:
    path: tuple[Any, ...] = ("pipelines", name)
    if not isinstance(spec, dict):
        raise at.error(path, "must be a mapping with a 'kind'")
    kind = str(spec.get("kind"))
    if kind not in KINDS:
        raise at.error(
            (*path, "kind"), f"unknown kind {spec.get('kind')!r}: expected one of {', '.join(KINDS)}"
        )
    allowed = {"kind", "description", *_FIELDS[kind]}
    for key in spec:
        if key not in allowed:
            raise at.error(
                (*path, key), f"unknown field for a {kind} pipeline (allowed: {', '.join(sorted(allowed))})"
            )
    for key in _REQUIRED[kind]:
        if key not in spec:
            raise at.error(path, f"a {kind} pipeline needs '{key}'")
    values: dict[str, Any] = {}
    for key, expected in _FIELDS[kind].items():
        if key not in spec:
            continue
        if expected is list:
            values[key] = _names(spec[key], (*path, key), at, unique=key in ("workers", "agents", "choices"))
        elif not isinstance(spec[key], str) or not spec[key].strip():
            raise at.error((*path, key), f"must be a name, got {spec[key]!r}")
        else:
            values[key] = spec[key]
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise at.error((*path, "description"), "must be text")
    return Pipeline(name=name, kind=kind, description=description, **values)


def _check_references(mesh: MeshFile, at: _Located) -> None:
    agents = set(mesh.agents)
    for pipeline in mesh.pipelines.values():
        for key in ("steps", "manager", "workers", "agents", "aggregator", "router", "choices"):
            value = getattr(pipeline, key)
            items = [value] if isinstance(value, str) else list(value)
            for index, name in enumerate(items):
                if not name:
                    continue
                nested_ok = key == "steps" and name in mesh.pipelines
                if name not in agents and not nested_ok:
                    path: tuple[Any, ...] = ("pipelines", pipeline.name, key)
                    if not isinstance(value, str):
                        path = (*path, index)
                    known = ", ".join(sorted(agents)) or "none declared"
                    raise at.error(path, f"unknown agent {name!r} (agents: {known})")


def _check_cycles(mesh: MeshFile, at: _Located) -> None:
    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name) :], name))
            raise at.error(("pipelines", trail[0], "steps"), f"pipelines call each other in a cycle: {cycle}")
        for step in mesh.pipelines[name].steps:
            if step in mesh.pipelines:
                visit(step, (*trail, name))

    for name in mesh.pipelines:
        visit(name, ())


TOP_LEVEL_KEYS = ("agents", "pipelines", "up")
AGENT_FIELDS: dict[str, type] = {"model": str, "replicas": int, "process": str}
"""What an agent entry may say (used by `meshscope up`): its model spec, its replica count, and the
process group it shares with other agents (seed modes 1 and 3)."""
MAX_REPLICAS = 64


def _agent_entry(name: str, entry: Any, at: _Located) -> AgentSpec:
    if entry is None:
        return AgentSpec(name)
    if not isinstance(entry, dict):
        raise at.error(("agents", name), "must be a mapping (model, replicas, process) or empty")
    for key, value in entry.items():
        expected = AGENT_FIELDS.get(key)
        if expected is None:
            raise at.error(("agents", name, key), f"unknown field (allowed: {', '.join(AGENT_FIELDS)})")
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLICAS:
                raise at.error(("agents", name, key), f"must be a whole number 1-{MAX_REPLICAS}")
        elif not isinstance(value, str) or not value.strip():
            raise at.error(("agents", name, key), "must be text")
    return AgentSpec(name, entry.get("model"), entry.get("replicas", 1), entry.get("process"))


def _check_groups(specs: Mapping[str, AgentSpec], at: _Located) -> None:
    """Agents sharing a process run together: one model spec flag, one replica count."""
    groups: dict[str, AgentSpec] = {}
    for spec in specs.values():
        if spec.process is None:
            continue
        first = groups.setdefault(spec.process, spec)
        for what in ("model", "replicas"):
            if getattr(spec, what) != getattr(first, what):
                raise at.error(
                    ("agents", spec.name, what),
                    f"agents sharing process {spec.process!r} must have the same {what} ({first.name}: "
                    f"{getattr(first, what)!r})",
                )


def _up(entry: Any, at: _Located) -> UpSpec:
    if entry is None:
        return UpSpec()
    if not isinstance(entry, dict):
        raise at.error(("up",), "must be a mapping (redis, ports)")
    for key in entry:
        if key not in ("redis", "ports"):
            raise at.error(("up", key), "unknown field (allowed: redis, ports)")
    redis = entry.get("redis", False)
    if not isinstance(redis, bool):
        raise at.error(("up", "redis"), "must be true or false")
    raw_ports = entry.get("ports") or {}
    if not isinstance(raw_ports, dict):
        raise at.error(("up", "ports"), f"must be a mapping of {', '.join(PORT_NAMES)} to ports")
    ports = dict(DEFAULT_PORTS)
    for key, value in raw_ports.items():
        if key not in PORT_NAMES:
            raise at.error(("up", "ports", key), f"unknown port (allowed: {', '.join(PORT_NAMES)})")
        lowest = 0 if key == "agents" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= 65535:
            raise at.error(("up", "ports", key), f"must be a port {lowest}-65535")
        ports[str(key)] = value
    return UpSpec(redis, ports)


def parse_mesh(text: str, source: str = "<mesh>") -> MeshFile:
    """Parse and validate a mesh file's text; PipelineError says where and why."""
    at = _Located(source, text)
    data = at.data or {}
    if not isinstance(data, dict):
        raise at.error((), "the mesh file must be a mapping with 'agents' and 'pipelines'")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise at.error((key,), f"unknown section (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    raw_agents = data.get("agents") or {}
    specs: dict[str, AgentSpec] = {}
    if isinstance(raw_agents, list):
        agents = _names(raw_agents, ("agents",), at, unique=True)
    elif isinstance(raw_agents, dict):
        agents = tuple(str(a) for a in raw_agents)
        for name, entry in raw_agents.items():
            specs[str(name)] = _agent_entry(str(name), entry, at)
        _check_groups(specs, at)
    else:
        raise at.error(("agents",), "must be a mapping (or list) of agent names")
    raw_pipelines = data.get("pipelines") or {}
    if not isinstance(raw_pipelines, dict):
        raise at.error(("pipelines",), "must be a mapping of pipeline names to pipelines")
    pipelines = {}
    for name, spec in raw_pipelines.items():
        if name in agents:
            raise at.error(("pipelines", name), "a pipeline cannot have the name of an agent")
        pipelines[str(name)] = _pipeline(str(name), spec, at)
    mesh = MeshFile(path=source, agents=agents, pipelines=pipelines, specs=specs, up=_up(data.get("up"), at))
    _check_references(mesh, at)
    _check_cycles(mesh, at)
    return mesh


def load_mesh(path: str | Path) -> MeshFile:
    """Read and validate a mesh file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    return parse_mesh(text, str(file))


def build_mesh(agents: Sequence[str], pipelines: Sequence[Pipeline]) -> MeshFile:
    """The same, built in Python (validated the same way)."""
    document: dict[str, Any] = {
        "agents": list(agents),
        "pipelines": {
            p.name: {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in vars(p).items()
                if k != "name" and v not in ("", ())
            }
            for p in pipelines
        },
    }
    return parse_mesh(yaml.safe_dump(document, sort_keys=False), "<python>")
