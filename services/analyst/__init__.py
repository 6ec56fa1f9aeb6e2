"""The analyst: breaks a question down and reasons over data."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from agentscope.tool import ToolBase

from meshscope.services.runtime.definition import AgentDefinition, SkillInfo
from meshscope.services.runtime.tools import allowed_tool


def summarize_numbers(values: list[float]) -> str:
    """Summarise a list of numbers: count, mean, minimum and maximum.

    Args:
        values: The numbers to summarise.
    """
    if not values:
        return "no values given"
    return (
        f"count={len(values)} mean={statistics.fmean(values):.3g} min={min(values):.3g} max={max(values):.3g}"
    )


def _tools() -> Sequence[ToolBase]:
    return [allowed_tool(summarize_numbers)]


AGENT = AgentDefinition(
    name="analyst",
    description="Analyses a question or a data set and lays out the key findings.",
    system_prompt=(
        "You are an analyst. Break the request into its parts, analyse each with care, "
        "use your tools for any numbers, and state the key findings plainly."
    ),
    skills=(
        SkillInfo(
            id="analysis",
            name="Analysis",
            description="Breaks a question down and reports the key findings.",
            tags=("analysis", "data"),
            examples=("Analyse the trade-offs of a service mesh for AI agents.",),
        ),
    ),
    tools=_tools,
)
