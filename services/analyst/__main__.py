"""Run the analyst agent alone: `python -m meshscope.services.analyst [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["analyst"], sys.argv[1:], prog="python -m meshscope.services.analyst"))
