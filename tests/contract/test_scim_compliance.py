"""SCIM compliance: scim2-tester, an independent checker, against identity behind the gateway.

NATS, identity and the gateway run as real processes (identity on a fresh SQLite file or
PostgreSQL schema, as the store under test says); the checker talks to the public
/scim/v2 with a provisioning client's token and must find no failure in what the
ServiceProviderConfig, ResourceTypes and Schemas declare.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from scim2_client import BaseSyncSCIMClient
from scim2_tester import Status, check_server

from deploy.launch import Platform, Ports
from shared.natsserver import start_nats_server, wait_for_port
from shared.testing.backends import fresh_database
from tests.e2e.conftest import create_admin


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client over httpx (its own engine wants httpx2, which would also switch every
    Starlette TestClient in the repository over to httpx2)."""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__()
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url = self.client.build_request("GET", endpoint).url
        base = self.client.base_url
        return url.host == base.host and url.port == base.port and url.path.startswith(base.path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """NATS, identity and the gateway (the other services are not needed for SCIM)."""
    var_dir: Path = tmp_path_factory.mktemp("scim").resolve()
    (var_dir / "logs").mkdir()
    ports = Ports.free()
    with fresh_database(var_dir, "identity") as database_url:
        running = Platform(var_dir=var_dir, ports=ports, database_urls={"identity": database_url})
        try:
            running.processes["nats"] = start_nats_server(var_dir / "nats", port=ports.nats)
            running.start_uvicorn(
                "identity", "services.identity.main", ports.identity, "127.0.0.1", {}
            )
            running.wait_ready("identity", running.url("identity"))
            # The checker sends hundreds of requests in seconds from one address.
            unlimited = {"KNOWFLOW_RATE_LIMIT_ENABLED": "false"}
            running.start_uvicorn("gateway", "gateway.main", ports.gateway, "127.0.0.1", unlimited)
            wait_for_port(ports.gateway, timeout=30, host="127.0.0.1")
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def scim_token(platform: Platform) -> str:
    with httpx.Client(base_url=f"{platform.gateway_url}/api/v1", timeout=30) as api:
        # The first admin as a deployment makes one: `knowflow-admin create-admin`.
        headers = create_admin(platform, api, "scimadmin")["headers"]
        created = api.post("/scim-clients", headers=headers, json={"name": "checker"})
        assert created.status_code == 201, created.text
        token: str = created.json()["token"]
        return token


def test_scim2_tester_finds_no_failure_through_the_gateway(
    platform: Platform, scim_token: str
) -> None:
    http = httpx.Client(
        base_url=f"{platform.gateway_url}/scim/v2",
        headers={"Authorization": f"Bearer {scim_token}"},
        timeout=30,
    )
    with http:
        results = check_server(HttpxSCIMClient(http), raise_exceptions=False)
    failures = [
        f"{result.title} [{result.resource_type}]: {result.reason}"
        for result in results
        if result.status in (Status.ERROR, Status.CRITICAL)
    ]
    passed = [result for result in results if result.status == Status.SUCCESS]
    assert not failures, "\n".join(failures)
    # It really checked the resources, not just the discovery endpoints.
    assert len(passed) > 20


def test_gateway_passes_the_client_token_and_refuses_others_with_scim_401(
    platform: Platform, scim_token: str
) -> None:
    base = f"{platform.gateway_url}/scim/v2"
    ok = httpx.get(f"{base}/Users", headers={"Authorization": f"Bearer {scim_token}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/scim+json")
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        refused = httpx.get(f"{base}/Users", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
