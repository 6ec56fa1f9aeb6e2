"""Pipelines built in Python are validated like the mesh file; the default mesh file is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshscope.orchestrator.pipelines import Pipeline, PipelineError, build_mesh, load_mesh
from meshscope.orchestrator.pool import EndpointPool
from meshscope.orchestrator.runs import Runner
from tests.support import REPO


def test_pipelines_built_in_python_match_the_yaml_form() -> None:
    mesh = build_mesh(
        ["analyst", "writer", "manager", "coder"],
        [
            Pipeline(name="analysis", kind="sequential", steps=("analyst", "writer")),
            Pipeline(name="build", kind="team", manager="manager", workers=("coder", "writer")),
        ],
    )
    assert mesh.pipelines["analysis"].steps == ("analyst", "writer")
    assert mesh.pipelines["build"].workers == ("coder", "writer")
    with pytest.raises(PipelineError, match=r"pipelines\.bad\.steps\[0\]: unknown agent 'poet'"):
        build_mesh(["analyst"], [Pipeline(name="bad", kind="sequential", steps=("poet",))])


def test_the_default_mesh_file_declares_the_seed_pipelines() -> None:
    mesh = load_mesh(REPO / "mesh.yaml")
    assert {"analysis", "project", "report"} <= set(mesh.pipelines)
    assert mesh.pipelines["analysis"].steps == ("analyst", "writer")
    assert mesh.pipelines["project"].kind == "team"
    assert mesh.pipelines["report"].steps == ("analyst", "reporter")
    with pytest.raises(PipelineError, match="cannot read"):
        load_mesh(REPO / "no-such-mesh.yaml")


def test_a_mesh_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "mesh.yaml"
    bad.write_bytes(b"agents: [a]\n# \xff\n")
    with pytest.raises(PipelineError, match=r"mesh.yaml: not UTF-8 text \(byte 14\)"):
        load_mesh(bad)


def test_a_router_may_name_its_choice_in_any_case_and_with_inner_dots() -> None:
    mesh = build_mesh(
        ["router", "Coder", "data.analyst", "writer"],
        [Pipeline(name="triage", kind="route", router="router", choices=("Coder", "data.analyst"))],
    )
    runner = Runner(EndpointPool(), mesh)
    triage = mesh.pipelines["triage"]
    assert runner.choice_in("Send it to coder.", triage) == "Coder"
    assert runner.choice_in("This is one for DATA.ANALYST!", triage) == "data.analyst"
    assert runner.choice_in("Ask the writer.", triage) == "writer"  # named, but not an allowed choice
    assert runner.choice_in("Nobody fits.", triage) is None
