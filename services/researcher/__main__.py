"""Run the researcher agent alone: `python -m meshscope.services.researcher [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["researcher"], sys.argv[1:], prog="python -m meshscope.services.researcher"))
