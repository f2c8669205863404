"""Fixtures shared by the test modules."""

import os
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


@pytest.fixture(scope="module")
def shared_endpoints(tmp_path_factory) -> Any:
    """endpoints.yml with a Redis tracker store and lock store on a Redis of the module's own
    (what several server processes need); skips where there is no redis-server."""
    from live_server import free_port, start_redis, write
    folder = str(tmp_path_factory.mktemp("redis"))
    port = free_port()
    redis = start_redis(port, folder)
    block = "  type: redis\n  url: 127.0.0.1\n  port: {}\n".format(port)
    yield write(os.path.join(folder, "endpoints.yml"),
                "tracker_store:\n" + block + "lock_store:\n" + block)
    redis.kill()
    redis.wait()
