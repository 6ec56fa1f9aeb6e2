"""Lay out the `meshscope` package as it is installed, as symlinks, for mypy.

Why this exists: the distribution maps `meshscope.services` to services/, `meshscope.cli` to
meshscope_cli/ and so on (pyproject.toml, [tool.setuptools] package-dir), and setuptools'
editable install serves that mapping through an import hook that mypy cannot follow (mypy
reads folders, not import hooks). So `make lint` builds .build/typing/meshscope/: a folder of
symlinks to every entry of protos/meshscope plus one per remapped subpackage, and mypy checks
that tree under its real module names. The mapping is read from pyproject.toml, so there is
one list. Run from the repository root: `python scripts/typing_tree.py` (prints the folder).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

TREE = Path(".build/typing")


def package_dirs(pyproject: Path = Path("pyproject.toml")) -> dict[str, str]:
    """The `package-dir` mapping of pyproject.toml: import name -> folder (relative to the root)."""
    config = tomllib.loads(pyproject.read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return mapping


def build(root: Path = Path(".")) -> Path:
    """(Re)create TREE/meshscope under `root`; returns that folder."""
    mapping = package_dirs(root / "pyproject.toml")
    top = root / TREE / "meshscope"
    if top.exists():
        shutil.rmtree(top)
    top.mkdir(parents=True)
    source = (root / mapping["meshscope"]).resolve()
    for entry in source.iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        if name != "meshscope":
            (top / name.removeprefix("meshscope.")).symlink_to((root / folder).resolve())
    return top


if __name__ == "__main__":
    print(build())
    sys.exit(0)
