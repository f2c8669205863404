"""``python -m coreactors.run``: the flags of ``python -m rasa_core.run``, served by twistd.

``python -m coreactors.run --enable_api -d models/dialogue`` is ``twistd -n coreactors
--enable_api -d models/dialogue``; twistd brings signal handling and graceful shutdown.
"""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    from twisted.scripts.twistd import run
    args = list(sys.argv[1:] if argv is None else argv)
    # rasa_core.run spelled the multi-value flag "--cors a b"; twistd wants "--cors a --cors b".
    normalised: List[str] = []
    i = 0
    while i < len(args):
        normalised.append(args[i])
        if args[i] == "--cors":
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                normalised.extend([args[i], "--cors"])
                i += 1
            normalised.pop()
            continue
        i += 1
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "coreactors"] + normalised
    run()


if __name__ == "__main__":
    main()
