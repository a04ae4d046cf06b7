"""The real identity service (SQLite, real NATS) behind the real gateway."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.main import create_app
from gateway.tests.conftest import gateway_settings, serve


@pytest.fixture
def identity_gateway(tmp_path: Path, identity_url: str) -> Iterator[str]:
    with serve(create_app(gateway_settings(tmp_path, {"identity": identity_url}))) as url:
        yield url


def test_register_then_read_me_through_the_gateway(identity_gateway: str) -> None:
    registered = httpx.post(
        identity_gateway + "/api/v1/auth/register",
        json={
            "handle": "ada",
            "email": "ada@example.org",
            "password": "analytical engine",
            "display_name": "Ada",
        },
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["access_token"]
    me = httpx.get(
        identity_gateway + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status_code == 200
    assert me.json()["handle"] == "ada"
    # The service answers with the request id the gateway chose.
    assert len(me.headers.get_list("x-request-id")) == 1


def test_jwks_through_the_gateway_is_identity_jwks(
    identity_gateway: str, identity_url: str
) -> None:
    through = httpx.get(identity_gateway + "/api/v1/auth/jwks")
    direct = httpx.get(identity_url + "/.well-known/jwks.json")
    assert through.status_code == 200
    assert through.json() == direct.json()


def test_without_a_token_the_gateway_refuses_before_identity(identity_gateway: str) -> None:
    response = httpx.get(identity_gateway + "/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_another_method_on_a_public_path_is_the_services_405_not_a_401(
    identity_gateway: str,
) -> None:
    for method in ("PUT", "OPTIONS"):
        response = httpx.request(method, identity_gateway + "/api/v1/auth/login")
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"


def test_options_reaches_the_service_and_names_the_paths_methods(identity_gateway: str) -> None:
    login = httpx.post(
        identity_gateway + "/api/v1/auth/register",
        json={
            "handle": "opt",
            "email": "opt@example.org",
            "password": "correct horse",
            "display_name": "Opt",
        },
    )
    token = login.json()["access_token"]
    response = httpx.options(
        identity_gateway + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "PATCH"}
