"""The contract tests run against the whole platform, started as in the end-to-end tests.

The gateway's rate limits are raised here, so that schemathesis reaches the logic behind
every operation instead of mostly meeting 429s (which stay documented on every route).
"""

from collections.abc import Iterator

import pytest

from deploy.launch import Platform
from tests.e2e.conftest import started_platform

GENEROUS = '{"limit": 100000, "window": 60}'


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    limits = {
        f"KNOWFLOW_RATE_LIMIT_{route_class}": GENEROUS
        for route_class in ("READS", "WRITES", "SEARCH", "AUTH", "REGISTER_IP")
    }
    with started_platform(tmp_path_factory, limits) as running:
        yield running
