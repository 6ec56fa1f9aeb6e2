"""`python -m chaos [--clients 64] [--faults a,b] [--json FILE]`: one chaos run, its table, exit 0 on PASS.

`make chaos` runs it with 64 clients and every fault; tests/integration/test_chaos.py runs a
shortened variant (8 clients, every fault once) inside `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from chaos.run import FAULTS, run_chaos, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent A2A clients (default 64)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order (default: all)")
    parser.add_argument(
        "--steady", type=float, default=10.0, help="seconds of undisturbed load before each fault"
    )
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or args.clients < 1:
        parser.error(
            f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}" if unknown else "--clients must be >= 1"
        )
    with tempfile.TemporaryDirectory(prefix="meshscope-chaos-") as folder:
        report = asyncio.run(run_chaos(Path(folder), args.clients, faults, steady_s=args.steady))
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(summary(report), indent=1) + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
