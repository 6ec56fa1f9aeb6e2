"""The reporter: turns an analysis into a structured report."""

from __future__ import annotations

from collections.abc import Sequence

from agentscope.tool import ToolBase

from meshscope.services.runtime.definition import AgentDefinition, SkillInfo
from meshscope.services.runtime.tools import allowed_tool


def format_report(title: str, body: str) -> str:
    """Lay a report out in Markdown under a title.

    Args:
        title: The report's title.
        body: The report's content.
    """
    return f"# {title.strip()}\n\n{body.strip()}\n"


def _tools() -> Sequence[ToolBase]:
    return [allowed_tool(format_report)]


AGENT = AgentDefinition(
    name="reporter",
    description="Turns an analysis into a structured report with a summary and next steps.",
    system_prompt=(
        "You are a reporter. Turn the analysis you are given into a structured report: "
        "a summary, the findings, and next steps."
    ),
    skills=(
        SkillInfo(
            id="reporting",
            name="Reporting",
            description="Produces a structured report from an analysis.",
            tags=("report",),
            examples=("Write a report from this analysis.",),
        ),
    ),
    tools=_tools,
)
