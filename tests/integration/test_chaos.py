"""The shortened chaos run (`make chaos` is the full one): 8 A2A clients, every fault once, real
processes; the books must balance (chaos/run.py says what each fault and check asserts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.run import FAULTS, run_chaos

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
async def test_every_fault_under_load_loses_nothing(tmp_path: Path) -> None:
    report = await run_chaos(tmp_path, clients=8, faults=list(FAULTS), echo=lambda line: None)
    table = report.table()
    print(table)
    assert report.completed > 0, table
    assert {f.name for f in report.faults} == set(FAULTS)
    for fault in report.faults:
        assert fault.runs > 0, f"{fault.name}: no run was in flight\n{table}"
        assert fault.not_allowed == 0, f"{fault.name}: {fault.notes}\n{table}"
        assert fault.recovery_s is not None, f"{fault.name} did not recover\n{table}"
    assert not any(report.checks.values()), table
