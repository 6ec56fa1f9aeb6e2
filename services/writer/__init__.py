"""The writer: turns findings into clear prose."""

from __future__ import annotations

from collections.abc import Sequence

from agentscope.tool import ToolBase

from meshscope.services.runtime.definition import AgentDefinition, SkillInfo
from meshscope.services.runtime.tools import allowed_tool


def word_count(text: str) -> str:
    """Count the words of a draft.

    Args:
        text: The draft to measure.
    """
    return f"{len(text.split())} words"


def _tools() -> Sequence[ToolBase]:
    return [allowed_tool(word_count)]


AGENT = AgentDefinition(
    name="writer",
    description="Writes clear, well-structured prose from notes or an analysis.",
    system_prompt=(
        "You are a writer. Turn the material you are given into clear, well-structured prose "
        "for a technical reader. Keep it concise."
    ),
    skills=(
        SkillInfo(
            id="writing",
            name="Writing",
            description="Turns notes or findings into a readable article.",
            tags=("writing",),
            examples=("Write a short article from this analysis.",),
        ),
    ),
    tools=_tools,
)
