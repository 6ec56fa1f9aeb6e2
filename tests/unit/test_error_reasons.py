"""The declared error reasons: every error has one, every reason has a decision, the wire form reads back."""

from __future__ import annotations

from typing import cast

import grpc
import pytest

from meshscope.orchestrator.calls import DECISIONS, Decision, decide, relayed_reason
from meshscope.services.runtime import errors
from meshscope.services.runtime.errors import MeshError
from meshscope.v1 import common_pb2
from meshscope.wire import ERROR_REASON_METADATA, declared_reason, reason_metadata

ALL_REASONS = [cast(common_pb2.ErrorReason, value) for value in common_pb2.ErrorReason.values()]


def _subclasses(cls: type[MeshError]) -> list[type[MeshError]]:
    found: list[type[MeshError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_mesh_error_declares_its_own_reason() -> None:
    kinds = _subclasses(MeshError)
    assert {k.__name__ for k in kinds} >= {"ShuttingDown", "CutOff", "StoreBusy", "StoreUnavailable"}
    every: list[type[MeshError]] = [MeshError, *kinds]
    for kind in every:
        assert "reason" in vars(kind), f"{kind.__name__} inherits its reason instead of declaring one"
        assert kind.reason in ALL_REASONS
        assert kind.reason != common_pb2.ERROR_REASON_UNSPECIFIED, kind.__name__


def test_a_copy_with_another_message_keeps_the_reason() -> None:
    changed = errors.with_message(errors.StoreBusy("busy"), "still busy")
    assert changed.reason == common_pb2.ERROR_REASON_STORE_BUSY and changed.message == "still busy"


def test_every_reason_has_a_decision() -> None:
    assert set(DECISIONS) == set(ALL_REASONS)


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        # Declared by the agent: the reason decides, whatever the code.
        (grpc.StatusCode.UNAVAILABLE, common_pb2.ERROR_REASON_DRAINING, Decision.EJECT_AND_RETRY),
        (grpc.StatusCode.UNAVAILABLE, common_pb2.ERROR_REASON_CUT_OFF, Decision.EJECT_AND_RETRY),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, common_pb2.ERROR_REASON_STORE_BUSY, Decision.RETRY_ELSEWHERE),
        (grpc.StatusCode.UNAVAILABLE, common_pb2.ERROR_REASON_STORE_UNAVAILABLE, Decision.FAIL),
        (grpc.StatusCode.UNAVAILABLE, common_pb2.ERROR_REASON_MODEL_FAILURE, Decision.FAIL),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, common_pb2.ERROR_REASON_TOO_LARGE, Decision.FAIL),
        (grpc.StatusCode.UNAVAILABLE, common_pb2.ERROR_REASON_UNSPECIFIED, Decision.FAIL),
        # No reason: gRPC's own status, decided by its code.
        (grpc.StatusCode.UNAVAILABLE, None, Decision.EJECT_AND_RETRY),
        (grpc.StatusCode.CANCELLED, None, Decision.PAUSE_AND_RETRY),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, Decision.FAIL),
        (grpc.StatusCode.INTERNAL, None, Decision.FAIL),
    ],
)
def test_decisions_before_the_first_event(
    code: grpc.StatusCode, reason: common_pb2.ErrorReason | None, expected: Decision
) -> None:
    assert decide(code, reason, started=False) is expected


@pytest.mark.parametrize("reason", [None, *ALL_REASONS])
def test_after_the_first_event_nothing_is_retried(reason: common_pb2.ErrorReason | None) -> None:
    assert decide(grpc.StatusCode.UNAVAILABLE, reason, started=True) is Decision.FAIL


def test_a_status_without_a_reason_is_relayed_with_the_orchestrators() -> None:
    assert relayed_reason(grpc.StatusCode.UNAVAILABLE, None) == common_pb2.ERROR_REASON_AGENT_UNAVAILABLE
    assert relayed_reason(grpc.StatusCode.RESOURCE_EXHAUSTED, None) == common_pb2.ERROR_REASON_TOO_LARGE
    assert relayed_reason(grpc.StatusCode.UNIMPLEMENTED, None) == common_pb2.ERROR_REASON_INTERNAL
    busy = common_pb2.ERROR_REASON_STORE_BUSY
    assert relayed_reason(grpc.StatusCode.RESOURCE_EXHAUSTED, busy) == busy


@pytest.mark.parametrize("reason", ALL_REASONS)
def test_the_wire_form_reads_back(reason: common_pb2.ErrorReason) -> None:
    metadata = reason_metadata(reason)
    assert metadata == ((ERROR_REASON_METADATA, common_pb2.ErrorReason.Name(reason)),)
    assert declared_reason(metadata) == reason
    assert declared_reason([("other", "x"), (ERROR_REASON_METADATA, metadata[0][1].encode())]) == reason


def test_no_reason_and_an_unknown_reason_are_told_apart() -> None:
    assert declared_reason(None) is None
    assert declared_reason(()) is None
    assert declared_reason([("meshscope-error", "ShuttingDown")]) is None
    # A newer peer's reason: the service answered, with nothing this side can act on.
    unknown = declared_reason([(ERROR_REASON_METADATA, "ERROR_REASON_FROM_THE_FUTURE")])
    assert unknown == common_pb2.ERROR_REASON_UNSPECIFIED
    assert decide(grpc.StatusCode.UNAVAILABLE, unknown, started=False) is Decision.FAIL
