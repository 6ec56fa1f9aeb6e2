"""Run the manager agent alone, as `meshscope serve agents --agents manager` does.

python -m meshscope.services.manager [--port P] [--host H] [--model M]
"""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["manager"], sys.argv[1:], prog="python -m meshscope.services.manager"))
