"""Helpers for giving agents tools that run without asking a human.

A `FunctionTool` without `permission=` parks the reply until a user
confirms; a mesh service has no user at hand, so the seed's tools (pure,
side-effect-free functions) are allowed explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentscope.permission import PermissionBehavior, PermissionDecision
from agentscope.tool import FunctionTool


def allowed_tool(func: Callable[..., Any]) -> FunctionTool:
    """Wrap a pure function as a tool that needs no confirmation."""
    return FunctionTool(
        func,
        is_read_only=True,
        permission=PermissionDecision(
            behavior=PermissionBehavior.ALLOW, message=f"{func.__name__} is a pure function"
        ),
    )
