"""Every variable the code reads is documented in docs/configuration.md, and every documented one is read.

"Read" means: the name appears in a string literal of the shipped code (services/, orchestrator/,
discovery/, meshscope_cli/, protos/meshscope/ without the generated stubs), docstrings and comments
left out. That is where the `meshscope.config.Config` getters take their names, and where the few
error messages naming a variable (`model ... needs the environment variable DASHSCOPE_API_KEY`)
take theirs. A knob added to the code without a row in docs/configuration.md fails
`test_every_variable_read_is_documented`; a row left behind after its knob went fails
`test_every_documented_variable_is_read`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("services", "orchestrator", "discovery", "meshscope_cli", "protos/meshscope")
GENERATED = "protos/meshscope/v1"
DOC = ROOT / "docs" / "configuration.md"
NAME = re.compile(r"\b(?:MESHSCOPE|CONSUL|REDIS|OTEL|OPENAI|DASHSCOPE)_[A-Z0-9_]*[A-Z0-9]\b")

DOCUMENTED_NOT_READ: dict[str, str] = {
    # name -> why docs/configuration.md names it although no shipped code reads it.
    # (The test-only binaries, MESHSCOPE_CONSUL_BIN and the like, are read by `meshscope.testing`,
    # which ships in protos/meshscope/.)
    "OTEL_EXPORTER_OTLP_HEADERS": "read by the OpenTelemetry OTLP exporter itself",
    "OTEL_RESOURCE_ATTRIBUTES": "read by the OpenTelemetry SDK's Resource.create",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (of modules, classes, functions, attributes)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for statement in body:
            if (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                found.add(id(statement.value))
    return found


def _literals(source: str) -> Iterator[str]:
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value


def names_read() -> dict[str, str]:
    """{variable: the first file (relative to the checkout) whose code names it}."""
    read: dict[str, str] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(GENERATED):
                continue
            for literal in _literals(path.read_text(encoding="utf-8")):
                for name in NAME.findall(literal):
                    read.setdefault(name, relative)
    return read


def names_documented() -> set[str]:
    """Every variable named in docs/configuration.md."""
    return set(NAME.findall(DOC.read_text(encoding="utf-8")))


def test_the_collector_sees_getter_names_and_skips_docstrings() -> None:
    source = '"""MESHSCOPE_IN_A_DOCSTRING"""\nx = config.seconds("MESHSCOPE_NEW_KNOB_S", 1.0)\n'
    assert list(_literals(source)) == ["MESHSCOPE_NEW_KNOB_S"]
    read = names_read()
    for known in ("MESHSCOPE_PORT", "REDIS_URL", "CONSUL_HTTP_ADDR", "DASHSCOPE_API_KEY", "MESHSCOPE_MODEL"):
        assert known in read, known


def test_every_variable_read_is_documented() -> None:
    missing = {name: where for name, where in names_read().items() if name not in names_documented()}
    assert not missing, f"read but not in docs/configuration.md: {missing}"


def test_every_documented_variable_is_read() -> None:
    read = names_read()
    stale = sorted(
        name for name in names_documented() if name not in read and name not in DOCUMENTED_NOT_READ
    )
    assert not stale, f"in docs/configuration.md but read nowhere: {stale}"
    assert not set(DOCUMENTED_NOT_READ) & set(read), "an exception that is read after all: drop it"
