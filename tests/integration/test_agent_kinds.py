"""Anything that streams AgentScope events runs through the same service path."""

from __future__ import annotations

import pytest
from agentscope.agent import Agent, InjectionConfig, ReActConfig
from agentscope.pipeline import TeamMember, TeamPipeline
from agentscope.state import AgentState

from meshscope.services.echo import CHUNKS, WORDS_PER_CHUNK
from meshscope.services.runtime.client import AgentClient
from meshscope.services.runtime.definition import AgentDefinition, BuildContext, StreamingAgent
from meshscope.services.runtime.models import ScriptedChatModel
from tests.conftest import StartServer, hosted

pytestmark = pytest.mark.integration


async def test_a_plain_object_with_reply_stream_is_an_agent(start_server: StartServer) -> None:
    server = await start_server(["echo"])
    async with AgentClient(server.address) as client:
        reply = await client.reply("echo", "one two three", session_id="e")
        again = await client.reply("echo", "four", session_id="e")
    deltas = [e.text_delta.delta for e in reply.events if e.HasField("text_delta")]
    assert len(deltas) == CHUNKS
    assert all(len(d.split()) == WORDS_PER_CHUNK for d in deltas)
    assert reply.text == "".join(deltas)
    assert reply.text.startswith("one two three one")
    assert again.text.startswith("four four")
    assert server.stats.completed == 2


def _team(context: BuildContext) -> StreamingAgent:
    """A manager leading a researcher, as AgentScope's TeamPipeline runs it."""

    def agent(name: str, model: ScriptedChatModel, state: AgentState | None = None) -> Agent:
        return Agent(
            name=name,
            system_prompt=f"You are the {name}.",
            model=model,
            react_config=ReActConfig(interruption_raise_cancelled_error=True),
            injection_config=InjectionConfig(inject_runtime_state=False),
            state=state,
        )

    assert isinstance(context.model, ScriptedChatModel)
    leader = agent(context.name, context.model, context.state)
    member = agent("researcher", ScriptedChatModel(persona="researcher"))
    return TeamPipeline(leader=leader, members=[TeamMember(agent=member, description="finds facts")])


async def test_a_team_pipeline_streams_every_members_reply(start_server: StartServer) -> None:
    team = AgentDefinition(name="manager", description="leads a team", build=_team)
    server = await start_server([hosted(team)])
    async with AgentClient(server.address) as client:
        reply = await client.reply("manager", "plan it #tool:TeamAssign", session_id="t")
    authors = {e.agent for e in reply.events if e.HasField("reply_start")}
    assert authors == {"manager", "researcher"}
    replies = {e.reply_id for e in reply.events}
    assert len(replies) == 2
    member_text = "".join(
        e.text_delta.delta for e in reply.events if e.HasField("text_delta") and e.agent == "researcher"
    )
    assert member_text.startswith("researcher: turn 1. You said: meshscope")
    assert reply.message is not None
    assert reply.message.name == "manager"
    assert "The TeamAssign tool returned" in reply.text
    # The leader's state was saved: the next turn continues the conversation.
    async with AgentClient(server.address) as client:
        after = await client.reply("manager", "and then?", session_id="t")
    assert "turn 2" in after.text
