"""The whole platform as real processes (NATS, four services, gateway) on free ports."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.launch import Platform, Ports, running_platform
from shared.natsserver import free_port


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    ports = Ports(
        gateway=free_port(),
        identity=free_port(),
        posts=free_port(),
        search=free_port(),
        digests=free_port(),
        nats=free_port(),
    )
    var_dir: Path = tmp_path_factory.mktemp("platform")
    with running_platform(var_dir, ports) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway_url}/api/v1", timeout=30.0) as client:
        yield client
