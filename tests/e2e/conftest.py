"""The whole platform as real processes (NATS, five services, gateway) on free ports.

On the production stack (see shared/testing/backends.py) the services run on
PostgreSQL schemas and the search service on the OpenSearch node.
"""

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.launch import SERVICES, Platform, Ports, running_platform
from shared.testing.backends import fresh_database, production_stack, require_opensearch


@contextmanager
def started_platform(
    tmp_path_factory: pytest.TempPathFactory, extra_env: dict[str, str] | None = None
) -> Iterator[Platform]:
    """NATS, the five services, the web app and the gateway as processes on free ports."""
    ports = Ports.free()
    var_dir: Path = tmp_path_factory.mktemp("platform")
    environment = dict(extra_env or {})
    if production_stack():
        environment |= {
            "KNOWFLOW_SEARCH_URL": require_opensearch(),
            "KNOWFLOW_SEARCH_INDEX_PREFIX": f"e2e-{secrets.token_hex(4)}",
        }
    with ExitStack() as stack:
        database_urls = {
            name: stack.enter_context(fresh_database(var_dir, name)) for name in SERVICES
        }
        with running_platform(
            var_dir, ports, extra_env=environment, database_urls=database_urls
        ) as running:
            yield running


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with started_platform(tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway_url}/api/v1", timeout=30.0) as client:
        yield client


ADMIN_PASSWORD = "an administrator's long passphrase"


def every_item(
    client: httpx.Client, path: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every item of a paged list (`items`, `next_cursor`), page by page to the end."""
    items: list[dict[str, Any]] = []
    query = {**params, "limit": 100}
    while True:
        response = client.get(path, headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]


def create_admin(platform: Platform, gateway: httpx.Client, handle: str) -> dict[str, Any]:
    """The first admin as a deployment makes one (`knowflow-admin create-admin` on identity's
    database; registering first makes nobody admin), signed in through the gateway."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.admin",
            "create-admin",
            handle,
            "--email",
            f"{handle}@example.org",
            "--password",
            ADMIN_PASSWORD,
            "--display-name",
            handle.title(),
            "--database-url",
            platform.database_urls.get("identity")
            or f"sqlite:///{platform.var_dir / 'identity'}.db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    response = gateway.post("/auth/login", json={"login": handle, "password": ADMIN_PASSWORD})
    assert response.status_code == 200, response.text
    account: dict[str, Any] = response.json()
    assert account["user"]["is_admin"], account
    account["headers"] = {"Authorization": f"Bearer {account['access_token']}"}
    return account
