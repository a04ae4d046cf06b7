"""Every operation in the gateway's OpenAPI, fed bad input, answers a problem+json 4xx."""

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploy.launch import Platform
from tests.e2e.conftest import started_platform

UNKNOWN_ID = str(uuid.uuid4())
PUBLIC_OPERATIONS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/auth/jwks"),
    # Their own token (a refresh token, a reset link's) is the credential.
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    # One-click unsubscribe from an e-mail: the signed token in the link is the credential.
    ("get", "/api/v1/notifications/unsubscribe"),
    ("post", "/api/v1/notifications/unsubscribe"),
    # An erasure's report: its random id is the credential (the erased person has no token).
    ("get", "/api/v1/users/erasure-report"),
    # Single sign-on is how people without a token get one.
    ("get", "/api/v1/auth/oidc/providers"),
    ("get", "/api/v1/auth/oidc/{provider}/login"),
    ("get", "/api/v1/auth/oidc/{provider}/callback"),
    ("post", "/api/v1/auth/oidc/exchange"),
}
# Bodies whose every field is optional: `{}` is a valid request (mark everything read).
OPTIONAL_BODIES = {("post", "/api/v1/notifications/read-all")}
# No input at all (the token names what it acts on), so none can be bad; it would also end
# the session of the token this test uses.
NO_INPUT = {("post", "/api/v1/auth/logout")}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Every operation, three times over, from one address: more than the rate limits allow
    in a minute (the limits' own tests are in gateway/), so they are raised here."""
    generous = '{"limit": 100000, "window": 60}'
    limits = {
        f"KNOWFLOW_RATE_LIMIT_{name}": generous for name in ("READS", "WRITES", "SEARCH", "AUTH")
    }
    with started_platform(tmp_path_factory, limits) as running:
        yield running


@pytest.fixture(scope="module")
def operations(platform: Platform) -> list[tuple[str, str]]:
    spec = httpx.get(f"{platform.gateway_url}/openapi.json", timeout=30).json()
    found = [
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "put", "delete"}
    ]
    assert len(found) >= 20, found
    return found


@pytest.fixture(scope="module")
def token(platform: Platform) -> str:
    response = httpx.post(
        f"{platform.gateway_url}/api/v1/auth/register",
        json={
            "handle": "fuzzer",
            "email": "fuzzer@example.org",
            "password": "a long passphrase for fuzzing",
            "display_name": "Fuzzer",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    access_token: str = response.json()["access_token"]
    return access_token


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def assert_problem(response: httpx.Response, label: str) -> None:
    assert 400 <= response.status_code < 500, (
        f"{label}: {response.status_code} {response.text[:300]}"
    )
    assert response.headers["content-type"].startswith("application/problem+json"), label
    body = response.json()
    assert body["status"] == response.status_code and body["title"], label
    # Errors name the URL the client called, not the service's internal path.
    assert body["instance"] is None or body["instance"].startswith("/api/v1/"), label


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("missing fields", {"json": {}}),
    ("wrong types", {"json": {"body": 5, "title": [], "name": {}, "handle": 1, "user_id": "x"}}),
    ("not an object", {"json": ["a", "list"]}),
    ("broken json", {"content": b'{"body": ', "headers": {"content-type": "application/json"}}),
    (
        "oversized",
        {
            "content": b"{" + b" " * 2_000_000 + b"}",
            "headers": {"content-type": "application/json"},
        },
    ),
]


def test_every_operation_rejects_missing_and_bad_tokens(
    platform: Platform, operations: list[tuple[str, str]]
) -> None:
    with httpx.Client(base_url=platform.gateway_url, timeout=30) as client:
        for method, path in operations:
            if (method, path) in PUBLIC_OPERATIONS:
                continue
            url = fill(path, UNKNOWN_ID)
            for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Token x"}):
                response = client.request(method.upper(), url, headers=headers, json={})
                assert response.status_code == 401, (
                    f"{method} {path} {headers}: {response.status_code}"
                )
                assert_problem(response, f"{method} {path}")


def test_every_operation_answers_bad_input_with_a_4xx_problem(
    platform: Platform, operations: list[tuple[str, str]], token: str
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=platform.gateway_url, timeout=30, headers=auth) as client:
        for method, path in operations:
            if "{" in path:
                for value in (UNKNOWN_ID, "not-a-uuid"):
                    response = client.request(method.upper(), fill(path, value), json={})
                    assert_problem(response, f"{method} {path} with id {value}")
            if method in {"post", "patch", "put"} and (method, path) not in NO_INPUT:
                for label, kwargs in BAD_BODIES:
                    if label == "missing fields" and (
                        method == "patch" or (method, path) in OPTIONAL_BODIES
                    ):
                        continue  # an empty partial update, or all-optional fields: valid
                    response = client.request(method.upper(), fill(path, UNKNOWN_ID), **kwargs)
                    assert_problem(response, f"{method} {path} {label}")
            if method == "get" and "{" not in path:
                response = client.get(
                    path, params={"limit": "lots", "cursor": "%%%", "period": "yearly"}
                )
                assert response.status_code < 500, (
                    f"{path}: {response.status_code} {response.text[:200]}"
                )


def test_unknown_route_is_a_404_problem(platform: Platform) -> None:
    response = httpx.get(f"{platform.gateway_url}/api/v1/nowhere", timeout=10)
    assert_problem(response, "unknown route")
