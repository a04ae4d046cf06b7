"""Health, readiness and Prometheus metrics, as ops see them."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.identity.main import create_app
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.testing.fixtures import ServiceClientFactory, wait_for


def identity_app(settings: Settings, _verifier: TokenVerifier) -> Any:
    return create_app(settings)


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def test_health_and_readiness_report_database_and_bus(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "bus": "ok"}


def test_readiness_fails_with_a_problem_when_the_bus_is_gone(client: TestClient) -> None:
    bus = client.app.state.bus  # type: ignore[attr-defined]
    client.portal.call(bus.client.close)  # type: ignore[union-attr]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["checks"]["bus"] == "unavailable"


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_and_events_published(client: TestClient) -> None:
    before = metric(
        client.get("/metrics").text,
        "knowflow_http_requests_total",
        route="/auth/register",
        status="201",
    )
    response = client.post(
        "/auth/register",
        json={
            "handle": "ops",
            "email": "ops@example.org",
            "password": "long enough",
            "display_name": "Ops",
        },
    )
    assert response.status_code == 201

    def published() -> float:
        return metric(
            client.get("/metrics").text, "knowflow_events_published_total", service="identity"
        )

    wait_for(lambda: published() >= 1)
    text = client.get("/metrics").text
    after = metric(text, "knowflow_http_requests_total", route="/auth/register", status="201")
    assert after == before + 1
    assert metric(text, "knowflow_http_request_duration_seconds_count", route="/auth/register") >= 1
    assert "knowflow_outbox_backlog" in text
