"""A hosted agent: its definition plus the model and toolkit built once per process.

Each turn runs on an AgentScope `Agent` bound to the state loaded for that
turn. Model client and toolkit are created once and shared. The `Agent`
objects themselves are pooled: `Agent.__init__` costs ~1.3 ms of CPU (it
re-derives the context-compression tool's JSON schema each time), about
half of a whole scripted turn, so an idle agent is re-bound to the next
turn's state instead (see `rebind_state`).
"""

from __future__ import annotations

from typing import Any

from agentscope.agent import Agent, InjectionConfig, ReActConfig
from agentscope.event import ModelCallEndEvent
from agentscope.middleware import MiddlewareBase, TracingMiddleware
from agentscope.state import AgentState
from agentscope.tool import Toolkit

from meshscope import telemetry
from meshscope.services.runtime.definition import AgentDefinition, BuildContext, StreamingAgent
from meshscope.services.runtime.models import ModelSpec, create_model
from meshscope.telemetry.instruments import TOKENS
from meshscope.v1 import common_pb2

PROTOCOL_VERSION = "1"


def build_standard_agent(context: BuildContext) -> StreamingAgent:
    """The default builder: an AgentScope `Agent` that re-raises cancellation.

    `interruption_raise_cancelled_error=True` makes a cancelled call really
    stop (instead of AgentScope swallowing it and ending the reply as
    interrupted); runtime-state injection is off so replies are a function
    of the conversation alone; the context's middlewares (AgentScope's
    TracingMiddleware when tracing is on) wrap its reply, model calls and tools.
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
        middlewares=list(context.middlewares),
    )


def rebind_state(agent: Agent, state: AgentState) -> None:
    """Point a finished, idle `Agent` at another turn's state.

    AgentScope 2.0.10 (pinned) binds exactly two things to the state in
    `Agent.__init__`: `agent.state` and the permission engine built over
    `state.permission_context`; everything else is per reply or per process.
    tests/unit/test_hosted.py checks that re-bound agents keep sessions apart.
    """
    from agentscope.permission import PermissionEngine

    agent.state = state
    agent._engine = PermissionEngine(state.permission_context)


MAX_IDLE_AGENTS = 64
"""Idle `Agent` objects kept per hosted agent (one per concurrent turn is reused)."""


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
        self._idle: list[Agent] = []
        # AgentScope's own spans (invoke_agent, chat <model>, execute_tool), under the Invoke span.
        self._middlewares: tuple[MiddlewareBase, ...] = (TracingMiddleware(),) if telemetry.enabled() else ()
        # The token metric's attributes, made once: they are the same for every model call.
        model = {
            "gen_ai.request.model": str(model_spec) if model_spec else "",
            "gen_ai.agent.name": definition.name,
        }
        self._input_tokens = {**model, "gen_ai.token.type": "input"}
        self._output_tokens = {**model, "gen_ai.token.type": "output"}

    @property
    def name(self) -> str:
        return self.definition.name

    def acquire(self, state: AgentState) -> StreamingAgent:
        """An agent for one turn, bound to the state loaded for it."""
        if self._idle:
            agent = self._idle.pop()
            rebind_state(agent, state)
            return agent
        return self._build(
            BuildContext(
                name=self.definition.name,
                system_prompt=self.definition.system_prompt,
                model=self.model,
                toolkit=self.toolkit,
                state=state,
                middlewares=self._middlewares,
            )
        )

    def count_tokens(self, event: ModelCallEndEvent) -> None:
        """Record one model call's tokens (gen_ai.client.token.usage, input and output)."""
        TOKENS.record(event.input_tokens, self._input_tokens)
        TOKENS.record(event.output_tokens, self._output_tokens)

    def release(self, agent: StreamingAgent, *, reusable: bool) -> None:
        """Give back a turn's agent; only agents whose turn completed normally are reused."""
        if not (reusable and self._build is build_standard_agent and isinstance(agent, Agent)):
            return
        if len(self._idle) < MAX_IDLE_AGENTS:
            self._idle.append(agent)

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
