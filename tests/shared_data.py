"""Where Rasa's example data lives for the tests: ``shared/data`` beside the repository.

``COREACTORS_SHARED_DATA`` overrides it. Tests that need it skip with a reason when it is absent.
"""

import os

SHARED_DATA = os.environ.get("COREACTORS_SHARED_DATA") or os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
