"""Run the manager agent alone: `python -m services.manager [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["manager"], sys.argv[1:], prog="python -m services.manager"))
