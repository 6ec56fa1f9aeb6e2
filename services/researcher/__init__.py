"""The researcher: gathers background on a topic."""

from __future__ import annotations

from collections.abc import Sequence

from agentscope.tool import ToolBase

from meshscope.services.runtime.definition import AgentDefinition, SkillInfo
from meshscope.services.runtime.tools import allowed_tool

_NOTES = {
    "grpc": "gRPC is an RPC framework over HTTP/2 with streaming and deadlines.",
    "consul": "Consul is a service registry with health checks and blocking queries.",
    "redis": "Redis is an in-memory data store often used for sessions and locks.",
    "a2a": "A2A is an open protocol for agents to call each other over HTTP.",
    "agentscope": "AgentScope is a framework for building LLM agents in Python.",
}


def lookup_topic(topic: str) -> str:
    """Look a topic up in the researcher's offline notes.

    Args:
        topic: The topic, e.g. "gRPC" or "Consul".
    """
    note = _NOTES.get(topic.strip().lower())
    return note or f"no notes on {topic!r}; known topics: {', '.join(sorted(_NOTES))}"


def _tools() -> Sequence[ToolBase]:
    return [allowed_tool(lookup_topic)]


AGENT = AgentDefinition(
    name="researcher",
    description="Gathers background facts on a topic and cites what it found.",
    system_prompt=(
        "You are a researcher. Gather the background a task needs, use your notes tool, "
        "and report facts with their source."
    ),
    skills=(
        SkillInfo(
            id="research",
            name="Research",
            description="Collects background information on a topic.",
            tags=("research",),
            examples=("What should we know about Consul before we build on it?",),
        ),
    ),
    tools=_tools,
)
