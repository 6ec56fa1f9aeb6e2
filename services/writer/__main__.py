"""Run the writer agent alone, as `meshscope serve agents --agents writer` does.

python -m meshscope.services.writer [--port P] [--host H] [--model M]
"""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["writer"], sys.argv[1:], prog="python -m meshscope.services.writer"))
