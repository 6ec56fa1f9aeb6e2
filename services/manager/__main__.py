"""Run the manager agent alone: `python -m meshscope.services.manager [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["manager"], sys.argv[1:], prog="python -m meshscope.services.manager"))
