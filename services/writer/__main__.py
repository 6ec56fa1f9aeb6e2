"""Run the writer agent alone: `python -m services.writer [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["writer"], sys.argv[1:], prog="python -m services.writer"))
