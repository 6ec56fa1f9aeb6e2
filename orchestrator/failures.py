"""The orchestrator's failures: a gRPC status, a message fit for the caller, a declared reason.

One shape for a step, a run and a session call, so each edge maps any of them to a status (and an
`error` event) the same way.
"""

from __future__ import annotations

from typing import TypeAlias

import grpc

from meshscope.v1 import common_pb2

Reason: TypeAlias = common_pb2.ErrorReason
"""A declared error reason (`meshscope.v1.ErrorReason`, common.proto)."""


class Failed(Exception):
    """Failed with `code` and `reason`; `message` says why, in one line fit for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
