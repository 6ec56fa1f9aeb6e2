"""Run the writer agent alone: `python -m meshscope.services.writer [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["writer"], sys.argv[1:], prog="python -m meshscope.services.writer"))
