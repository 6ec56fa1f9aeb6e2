"""How fast the mesh sees replicas come and go, against a real Consul dev agent.

Three timings, each repeated and quoted as median (min-max):
  register -> passing   from an agent process's ready line until Consul lists it under `?passing`
  SIGKILL -> gone       from SIGKILL of a replica until `?passing` no longer lists it
  restart -> registered from a restarted (empty) Consul electing itself leader until every live
                        replica is registered again

Run: `.venv/bin/python bench/discovery_times.py [--trials N]` (needs `make consul`). Check interval 1 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import functools
import signal
import statistics
import subprocess

from bench.load import positive_int
from bench.processes import REPO, child_env
from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import ConsulDevAgent, wait_until
from meshscope.testing.consul import consul_binary

until = functools.partial(wait_until, timeout=30.0)
"""Poll until a condition holds (at most 30 s); the seconds it took."""


def start_agent(consul: ConsulDevAgent, agent: str) -> ServiceProcess:
    env = child_env() | consul.env() | {"MESHSCOPE_LOG_LEVEL": "WARNING"}
    return launch(meshscope_command("serve", "agents", "--agents", agent, "--port", "0"), env, cwd=REPO)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms  ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=positive_int, default=5)
    args = parser.parse_args()
    registered, gone, restored = [], [], []
    with ConsulDevAgent() as consul:  # its log folder is removed afterwards
        for trial in range(args.trials):
            agent = start_agent(consul, "writer")
            replica = f"writer@{agent.address}"

            def listed(replica: str = replica) -> bool:
                return replica in consul.passing("writer")

            registered.append(until(listed))
            other = start_agent(consul, "analyst")
            until(lambda: len(consul.passing("analyst")) == 1)
            consul.restart()
            restored.append(until(lambda: len(consul.registered()) == 2))
            until(listed)
            agent.proc.send_signal(signal.SIGKILL)
            gone.append(until(lambda: not listed()))
            agent.stop()
            other.stop()
            print(
                f"trial {trial + 1}: {registered[-1]:.3f}s {gone[-1]:.3f}s {restored[-1]:.3f}s",
                flush=True,
            )
    version = subprocess.run([consul_binary(), "version"], capture_output=True, text=True, check=False)
    first_line = (version.stdout.splitlines() or ["Consul (version unknown)"])[0]
    print(f"\n{first_line} dev agent, check interval 1 s, {args.trials} trials, median (min-max):")
    print(f"  register -> passing          {summary(registered)}   target < 3 s")
    print(f"  SIGKILL  -> gone from passing {summary(gone)}   target < 3 s")
    print(f"  Consul restart -> re-registered {summary(restored)}   target < 5 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
