"""``python -m coreactors.evaluate``: the same flags as ``python -m rasa_core.evaluate``."""

import sys

from coreactors.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate"] + sys.argv[1:]))
