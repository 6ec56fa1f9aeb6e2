"""Run the researcher agent alone: `python -m services.researcher [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["researcher"], sys.argv[1:], prog="python -m services.researcher"))
