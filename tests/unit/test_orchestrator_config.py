"""The orchestrator reads the same gRPC keepalive knobs as agent services, for its server and its channels."""

from __future__ import annotations

import pytest

from meshscope.orchestrator.config import OrchestratorConfigError, OrchestratorSettings


def test_keepalive_knobs_reach_the_channel_options() -> None:
    settings = OrchestratorSettings.from_env(
        {"MESHSCOPE_GRPC_KEEPALIVE_TIME_S": "5", "MESHSCOPE_GRPC_MIN_PING_INTERVAL_S": "2.5"}
    )
    options = dict(settings.channel_options())
    assert options["grpc.keepalive_time_ms"] == 5000
    assert options["grpc.keepalive_timeout_ms"] == 10_000  # the default
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 2500


@pytest.mark.parametrize("value", ["nan", "-1", "1e10"])
def test_a_keepalive_out_of_range_is_one_clear_error(value: str) -> None:
    with pytest.raises(
        OrchestratorConfigError, match=f"MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S='{value}' is not valid"
    ):
        OrchestratorSettings.from_env({"MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S": value})
