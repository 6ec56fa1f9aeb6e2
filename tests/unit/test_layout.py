"""One import root: the distribution provides `meshscope` and nothing else, while the folders stay
where the layout puts them (pyproject.toml [tool.setuptools] package-dir)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.support import REPO

OLD_ROOTS = ("services", "orchestrator", "discovery", "meshscope_cli")


def _setuptools() -> tuple[dict[str, str], list[str]]:
    """pyproject.toml's package-dir mapping and package list."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return dict(config["package-dir"]), list(config["packages"])


def test_the_package_list_names_every_folder_under_the_mapped_roots() -> None:
    mapping, packages = _setuptools()
    found = set()
    for name, folder in mapping.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            if "__pycache__" not in relative:
                found.add(".".join((name, *relative)))
    assert sorted(found) == sorted(packages)
    # A folder of modules without __init__.py would be left out of the wheel silently.
    for folder in mapping.values():
        for module in (REPO / folder).rglob("*.py"):
            assert (module.parent / "__init__.py").exists(), f"{module.parent} has no __init__.py"


def test_every_module_imports_under_meshscope_and_the_old_names_are_gone(tmp_path: Path) -> None:
    # From a folder outside the checkout, so that the repository root is not on sys.path.
    probe = (
        "import importlib\n"
        "for m in ('meshscope.services.runtime.server', 'meshscope.services.echo',\n"
        "          'meshscope.orchestrator.service', 'meshscope.discovery.watcher', 'meshscope.cli.main',\n"
        "          'meshscope.v1.agent_pb2', 'meshscope.testing'):\n"
        "    importlib.import_module(m)\n"
        f"for old in {OLD_ROOTS!r}:\n"
        "    try:\n"
        "        importlib.import_module(old)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    print('still importable:', old)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_the_wheel_has_one_top_level_name(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    source = tmp_path / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", ".tools", ".build", "build", "*_cache",
                                                    "__pycache__", "*.egg-info", ".meshscope"),
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("meshscope-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"meshscope"}
    for expected in (
        "meshscope/services/runtime/server.py",
        "meshscope/services/echo/__main__.py",
        "meshscope/orchestrator/service.py",
        "meshscope/discovery/watcher.py",
        "meshscope/cli/main.py",
        "meshscope/v1/agent_pb2.py",
        "meshscope/v1/agent.proto",
        "meshscope/testing/consul.py",
        "meshscope/py.typed",
    ):
        assert expected in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "meshscope = meshscope.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
