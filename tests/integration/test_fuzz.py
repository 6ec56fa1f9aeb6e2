"""The bounded fuzz run (`make fuzz` is the long one): generated gRPC requests to the agent and
orchestrator services and HTTP requests to the bridge, against real processes (fuzz/run.py says
what is generated and what must hold)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.run import run_fuzz

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_no_edge_answers_generated_requests_with_an_internal_error(tmp_path: Path) -> None:
    report = run_fuzz(tmp_path, grpc_budget=400, http_budget=400, echo=lambda line: None)
    table = report.table()
    print(table)
    assert report.requests == 800, table
    assert report.bad_count == 0, table  # no INTERNAL, no UNKNOWN, no 5xx
    assert not any(report.tracebacks.values()), table
    assert all(report.alive.values()) and set(report.alive) == {"agents", "orchestrator", "bridge"}, table
    # The generated requests reach past the edge: some are served, not only refused.
    assert report.grpc_statuses["OK"] > 0 and report.http_statuses[200] > 0, table
