"""Run the coder agent alone, as `meshscope serve agents --agents coder` does.

python -m meshscope.services.coder [--port P] [--host H] [--model M]
"""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["coder"], sys.argv[1:], prog="python -m meshscope.services.coder"))
