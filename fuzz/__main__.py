"""`python -m fuzz [--grpc N] [--http N]`: one fuzz run, its counts, exit 0 on PASS.

`make fuzz` sends 6,000 of each (12,000 in all); tests/integration/test_fuzz.py runs a bounded
budget inside `make test`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fuzz.run import run_fuzz


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--grpc", type=int, default=6000, help="gRPC requests (default 6000)")
    parser.add_argument("--http", type=int, default=6000, help="HTTP requests to the bridge (default 6000)")
    args = parser.parse_args(argv)
    if args.grpc < 0 or args.http < 0:
        parser.error("budgets must be >= 0")
    with tempfile.TemporaryDirectory(prefix="meshscope-fuzz-") as folder:
        report = run_fuzz(Path(folder), args.grpc, args.http)
    print(report.table())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
