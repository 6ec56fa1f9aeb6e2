"""The manager: plans work for a team and synthesises its results."""

from __future__ import annotations

from meshscope.services.runtime.definition import AgentDefinition, SkillInfo

AGENT = AgentDefinition(
    name="manager",
    description="Plans a project, assigns the parts to workers and merges their results.",
    system_prompt=(
        "You are a project manager. Split the request into tasks for a researcher and a coder, "
        "then merge their results into one answer."
    ),
    skills=(
        SkillInfo(
            id="planning",
            name="Planning",
            description="Plans work for a team and synthesises the outcome.",
            tags=("planning", "management"),
            examples=("Plan a prototype of a rate limiter.",),
        ),
    ),
)
