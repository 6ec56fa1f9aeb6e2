"""What an agent service hosts: an `AgentDefinition` per agent name.

A definition is data (name, prompt, skills, tools) plus, optionally, a
custom `build` function. Without one, each turn builds a standard
AgentScope `Agent`; with one, anything that streams AgentScope events
(a `TeamPipeline`, a benchmark echo agent) runs through the same path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentscope.middleware import MiddlewareBase
from agentscope.model import ChatModelBase
from agentscope.state import AgentState
from agentscope.tool import ToolBase, Toolkit


class StreamingAgent(Protocol):
    """Anything that answers a message by streaming AgentScope events."""

    def reply_stream(self, inputs: Any = None) -> AsyncIterator[Any]:
        """Yield AgentScope `AgentEvent`s (and possibly the final `Msg`)."""
        ...


@dataclass(frozen=True, slots=True)
class SkillInfo:
    """A skill an agent advertises (A2A AgentSkill)."""

    id: str
    name: str
    description: str
    tags: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Everything a turn's agent is built from; model and toolkit are per process."""

    name: str
    system_prompt: str
    model: ChatModelBase | None
    toolkit: Toolkit
    state: AgentState
    middlewares: Sequence[MiddlewareBase] = ()
    """AgentScope middlewares every agent of this process carries (tracing, when it is on)."""


def _no_tools() -> Sequence[ToolBase]:
    return ()


@dataclass(frozen=True)
class AgentDefinition:
    """One agent a service can host."""

    name: str
    description: str
    system_prompt: str = ""
    skills: tuple[SkillInfo, ...] = ()
    tools: Callable[[], Sequence[ToolBase]] = field(default=_no_tools)
    version: str = "0.1.0"
    model: str = "scripted"
    """Default model spec; the mesh file, `--model` or MESHSCOPE_MODEL override it."""
    build: Callable[[BuildContext], StreamingAgent] | None = None
    """Custom builder; None builds a standard AgentScope `Agent`."""
    needs_model: bool = True
    """False for agents that never call a model (e.g. the benchmark echo agent)."""
