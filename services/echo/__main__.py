"""Run the echo agent alone: `python -m services.echo [--port P] [--host H] [--model SPEC]`."""

import sys

from services.runtime.entry import main

sys.exit(main(["echo"], sys.argv[1:], prog="python -m services.echo"))
