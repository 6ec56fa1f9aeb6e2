"""The agents this repository ships, by name.

Each lives in `services/<name>/` and exposes `AGENT`, an `AgentDefinition`;
they are imported lazily so a process pays only for the agents it hosts.
"""

from __future__ import annotations

import importlib

from meshscope.services.runtime.definition import AgentDefinition
from meshscope.services.runtime.errors import ConfigError

SEED_AGENTS = ("analyst", "writer", "researcher", "coder", "manager", "reporter")
"""The example agents of AgentScope Runtime's multi-agent guide."""

EXTRA_AGENTS = ("echo",)
"""Utility agents: `echo` streams its input back without a model (benchmarks)."""

KNOWN_AGENTS = SEED_AGENTS + EXTRA_AGENTS


def load_definition(name: str) -> AgentDefinition:
    """The definition of a shipped agent; ConfigError lists the known ones."""
    if name not in KNOWN_AGENTS:
        raise ConfigError(f"unknown agent {name!r}: known agents are {', '.join(KNOWN_AGENTS)}")
    module = importlib.import_module(f"meshscope.services.{name}")
    definition: AgentDefinition = module.AGENT
    return definition


def parse_agent_list(value: str) -> list[str]:
    """`a,b,c` as a validated, de-duplicated list."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError("--agents needs at least one agent name, e.g. --agents analyst,writer")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"--agents names {', '.join(duplicates)} more than once")
    for name in names:
        load_definition(name)
    return names
