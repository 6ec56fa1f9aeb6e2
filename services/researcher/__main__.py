"""Run the researcher agent alone, as `meshscope serve agents --agents researcher` does.

python -m meshscope.services.researcher [--port P] [--host H] [--model M]
"""

import sys

from meshscope.services.runtime.entry import main

sys.exit(main(["researcher"], sys.argv[1:], prog="python -m meshscope.services.researcher"))
