"""The coder: writes and checks code."""

from __future__ import annotations

import ast
from collections.abc import Sequence

from agentscope.tool import ToolBase

from meshscope.services.runtime.definition import AgentDefinition, SkillInfo
from meshscope.services.runtime.tools import allowed_tool


def check_python_syntax(code: str) -> str:
    """Check that a Python snippet parses (it is never executed).

    Args:
        code: The Python source to check.
    """
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"SyntaxError at line {exc.lineno}: {exc.msg}"
    return "valid Python"


def _tools() -> Sequence[ToolBase]:
    return [allowed_tool(check_python_syntax)]


AGENT = AgentDefinition(
    name="coder",
    description="Writes code for a task and checks that it is well-formed.",
    system_prompt=(
        "You are a software engineer. Write small, correct code for the task and check its "
        "syntax with your tool before you answer."
    ),
    skills=(
        SkillInfo(
            id="coding",
            name="Coding",
            description="Writes and checks code.",
            tags=("code", "python"),
            examples=("Write a Python function that retries with back-off.",),
        ),
    ),
    tools=_tools,
)
