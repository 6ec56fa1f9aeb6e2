"""Run the coder agent alone: `python -m services.coder [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["coder"], sys.argv[1:], prog="python -m services.coder"))
