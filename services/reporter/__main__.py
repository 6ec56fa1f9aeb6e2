"""Run the reporter agent alone, as `meshscope serve agents --agents reporter` does.

python -m meshscope.services.reporter [--port P] [--host H] [--model M]
"""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["reporter"], sys.argv[1:], prog="python -m meshscope.services.reporter"))
