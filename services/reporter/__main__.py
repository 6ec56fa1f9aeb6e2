"""Run the reporter agent alone: `python -m services.reporter [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["reporter"], sys.argv[1:], prog="python -m services.reporter"))
