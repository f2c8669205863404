"""Fixtures shared by the test modules."""

from typing import Any, Dict, List

import pytest
from twisted.logger import globalLogPublisher


@pytest.fixture
def events() -> Any:
    """Every log event published while the test runs, in order."""
    seen: List[Dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)
