"""Run the reporter agent alone: `python -m meshscope.services.reporter [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["reporter"], sys.argv[1:], prog="python -m meshscope.services.reporter"))
