"""Run the echo agent alone: `python -m meshscope.services.echo [--port P] [--host H] [--model SPEC]`."""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["echo"], sys.argv[1:], prog="python -m meshscope.services.echo"))
