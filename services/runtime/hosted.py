"""A hosted agent: its definition plus the model and toolkit built once per process.

Building an AgentScope `Agent` is cheap (a few ms) and keeps turns isolated,
so each turn builds a fresh one around the state it loaded; the expensive
parts (model client, toolkit) are created here once and shared.
"""

from __future__ import annotations

from typing import Any

from agentscope.agent import Agent, InjectionConfig, ReActConfig
from agentscope.state import AgentState
from agentscope.tool import Toolkit

from meshscope.v1 import common_pb2
from services.runtime.definition import AgentDefinition, BuildContext, StreamingAgent
from services.runtime.models import ModelSpec, create_model

PROTOCOL_VERSION = "1"


def build_standard_agent(context: BuildContext) -> StreamingAgent:
    """The default builder: an AgentScope `Agent` that re-raises cancellation.

    `interruption_raise_cancelled_error=True` makes a cancelled call really
    stop (instead of AgentScope swallowing it and ending the reply as
    interrupted); runtime-state injection is off so replies are a function
    of the conversation alone.
    """
    if context.model is None:
        raise ValueError(f"agent {context.name!r} needs a model")
    return Agent(
        name=context.name,
        system_prompt=context.system_prompt,
        model=context.model,
        toolkit=context.toolkit,
        state=context.state,
        react_config=ReActConfig(interruption_raise_cancelled_error=True),
        injection_config=InjectionConfig(inject_runtime_state=False),
    )


class HostedAgent:
    """One agent served by this process."""

    def __init__(self, definition: AgentDefinition, model_spec: ModelSpec | None) -> None:
        self.definition = definition
        self.model_spec = model_spec
        self.model = (
            create_model(model_spec, persona=definition.name)
            if definition.needs_model and model_spec is not None
            else None
        )
        self.toolkit = Toolkit(tools=list(definition.tools()))
        self._build = definition.build or build_standard_agent

    @property
    def name(self) -> str:
        return self.definition.name

    def build(self, state: AgentState) -> StreamingAgent:
        """A fresh agent for one turn, around the state loaded for it."""
        return self._build(
            BuildContext(
                name=self.definition.name,
                system_prompt=self.definition.system_prompt,
                model=self.model,
                toolkit=self.toolkit,
                state=state,
            )
        )

    @staticmethod
    def state_of(agent: StreamingAgent) -> AgentState | None:
        """The state to save after a turn: the agent's own, or a team leader's."""
        state: Any = getattr(agent, "state", None)
        if state is None:
            leader = getattr(agent, "leader", None)
            state = getattr(leader, "state", None)
        return state if isinstance(state, AgentState) else None

    def card(self) -> common_pb2.AgentCard:
        """The wire card of this agent."""
        d = self.definition
        return common_pb2.AgentCard(
            name=d.name,
            description=d.description,
            skills=[
                common_pb2.Skill(
                    id=s.id, name=s.name, description=s.description, tags=s.tags, examples=s.examples
                )
                for s in d.skills
            ],
            input_modes=["text/plain"],
            output_modes=["text/plain"],
            version=d.version,
            protocol_version=PROTOCOL_VERSION,
            streaming=True,
            model=str(self.model_spec) if self.model_spec else "",
        )
