"""Run the coder agent alone: `python -m meshscope.services.coder [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["coder"], sys.argv[1:], prog="python -m meshscope.services.coder"))
