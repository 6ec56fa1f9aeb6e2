"""Pooled agents: a re-bound Agent keeps sessions apart."""

from __future__ import annotations

from agentscope.message import UserMsg
from agentscope.state import AgentState

from meshscope.services.catalog import load_definition
from meshscope.services.runtime.hosted import HostedAgent
from meshscope.services.runtime.models import parse_model_spec


async def _text(hosted: HostedAgent, state: AgentState, text: str) -> str:
    agent = hosted.acquire(state)
    reply = ""
    async for event in agent.reply_stream(UserMsg(name="user", content=text)):
        reply += getattr(event, "delta", "") if type(event).__name__ == "TextBlockDeltaEvent" else ""
    hosted.release(agent, reusable=True)
    return reply


async def test_a_released_agent_is_reused_and_bound_to_the_next_state() -> None:
    hosted = HostedAgent(load_definition("analyst"), parse_model_spec("scripted"))
    alice, bob = AgentState(session_id="alice"), AgentState(session_id="bob")
    first = hosted.acquire(alice)
    hosted.release(first, reusable=True)
    again = hosted.acquire(bob)
    assert again is first
    assert again.state is bob  # type: ignore[attr-defined]
    hosted.release(again, reusable=True)

    assert "turn 1" in await _text(hosted, alice, "alice here")
    assert "turn 1" in await _text(hosted, bob, "bob here")
    second = await _text(hosted, alice, "alice again")
    assert "turn 2" in second and "Earlier you said: alice here" in second
    assert len(alice.context) == 4 and len(bob.context) == 2


async def test_agents_of_failed_turns_are_not_reused() -> None:
    hosted = HostedAgent(load_definition("writer"), parse_model_spec("scripted"))
    agent = hosted.acquire(AgentState())
    hosted.release(agent, reusable=False)
    assert hosted.acquire(AgentState()) is not agent


async def test_concurrent_turns_get_distinct_agents() -> None:
    hosted = HostedAgent(load_definition("writer"), parse_model_spec("scripted"))
    one, two = hosted.acquire(AgentState()), hosted.acquire(AgentState())
    assert one is not two
