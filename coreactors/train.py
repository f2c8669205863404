"""``python -m coreactors.train``: the same flags as ``python -m rasa_core.train``."""

import sys

from coreactors.cli import main

if __name__ == "__main__":
    sys.exit(main(["train"] + sys.argv[1:]))
