"""Run the analyst agent alone: `python -m services.analyst [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["analyst"], sys.argv[1:], prog="python -m services.analyst"))
