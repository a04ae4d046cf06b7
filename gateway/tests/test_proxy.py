"""Forwarding behaviour, over real HTTP to real (small) upstreams."""

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.main import create_app
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve
from shared.auth import TokenIssuer

Upstreams = dict[str, tuple[EchoUpstream, str]]
AuthHeader = Callable[..., dict[str, str]]


def echo(response: httpx.Response) -> dict[str, Any]:
    payload: dict[str, Any] = response.json()
    payload["headers"] = dict(payload["headers"])
    return payload


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= problem.keys()
    assert problem["status"] == status
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


def test_routes_each_family_to_its_service_without_prefix_and_keeps_query(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    cases = {
        "/api/v1/users/me": ("identity", "/users/me"),
        "/api/v1/groups/7/members": ("identity", "/groups/7/members"),
        "/api/v1/follows": ("identity", "/follows"),
        "/api/v1/posts/1": ("posts", "/posts/1"),
        "/api/v1/articles": ("posts", "/articles"),
        "/api/v1/search": ("search", "/search"),
        "/api/v1/experts/rust": ("search", "/experts/rust"),
    }
    for public, (service, path) in cases.items():
        response = httpx.get(
            gateway_url + public, params={"q": "a b", "tag": ["x", "y"]}, headers=auth_header()
        )
        assert response.status_code == 200, public
        call = echo(response)
        assert (call["service"], call["path"]) == (service, path)
        assert call["query"] == "q=a+b&tag=x&tag=y"
        assert call["headers"]["x-forwarded-prefix"] == "/api/v1"


def test_a_client_cannot_forge_the_forwarded_prefix(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    headers = {**auth_header(), "X-Forwarded-Prefix": "/evil"}
    call = echo(httpx.get(gateway_url + "/api/v1/posts", headers=headers))
    assert call["headers"]["x-forwarded-prefix"] == "/api/v1"


def test_jwks_route_maps_to_identity_well_known_without_a_token(
    gateway_url: str, echo_upstreams: Upstreams
) -> None:
    response = httpx.get(gateway_url + "/api/v1/auth/jwks")
    assert response.status_code == 200
    assert response.json() == echo_upstreams["identity"][0].jwks


def test_register_and_login_need_no_token(gateway_url: str) -> None:
    for path in ("/api/v1/auth/register", "/api/v1/auth/login"):
        response = httpx.post(gateway_url + path, json={"handle": "ann"})
        assert response.status_code == 201
        call = echo(response)
        assert call["path"] == path.removeprefix("/api/v1")
        assert call["body"] == '{"handle":"ann"}'


def test_single_sign_on_needs_no_token_and_other_auth_paths_still_do(gateway_url: str) -> None:
    """SSO (GET /api/v1/auth/oidc/...) is how people without a token get one."""
    for path in ("/api/v1/auth/oidc/providers", "/api/v1/auth/oidc/corp/callback"):
        response = httpx.get(gateway_url + path, params={"code": "c", "state": "s"})
        assert response.status_code == 200
        assert echo(response)["path"] == path.removeprefix("/api/v1")
    # Only under the SSO prefix (another method there is the service's own 405).
    for path in ("/api/v1/auth/oidcx", "/api/v1/auth/other"):
        assert httpx.get(gateway_url + path).status_code == 401
    # The hand-off code is the web app's credential.
    exchanged = httpx.post(gateway_url + "/api/v1/auth/oidc/exchange", json={"code": "c"})
    assert exchanged.status_code == 201  # the echo upstream's answer to a POST
    assert echo(exchanged)["path"] == "/auth/oidc/exchange"


def test_missing_token_is_401_problem_and_upstream_is_not_called(
    gateway_url: str, echo_upstreams: Upstreams
) -> None:
    response = httpx.get(gateway_url + "/api/v1/posts")
    problem = assert_problem(response, 401)
    assert problem["instance"] == "/api/v1/posts"
    assert response.headers["www-authenticate"] == "Bearer"
    assert echo_upstreams["posts"][0].calls == []


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"],
)
def test_bad_token_is_401_and_upstream_is_not_called(
    gateway_url: str, echo_upstreams: Upstreams, authorization: str
) -> None:
    response = httpx.post(
        gateway_url + "/api/v1/posts", headers={"Authorization": authorization}, json={}
    )
    assert_problem(response, 401)
    assert echo_upstreams["posts"][0].calls == []


def test_token_from_another_issuer_key_is_401(gateway_url: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.auth import TokenIssuer
    from shared.ids import new_id

    forger = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=60,
    )
    token = forger.issue(user_id=new_id(), handle="mallory")
    response = httpx.get(
        gateway_url + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 401)


def test_valid_token_is_forwarded_so_services_verify_too(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    header = auth_header()
    response = httpx.get(gateway_url + "/api/v1/users/me", headers=header)
    assert response.status_code == 200
    assert echo(response)["headers"]["authorization"] == header["Authorization"]


def test_request_id_is_generated_forwarded_and_returned(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    response = httpx.get(gateway_url + "/api/v1/posts", headers=auth_header())
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    forwarded = echo(response)["headers"]
    assert forwarded["x-request-id"] == request_id
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", forwarded["traceparent"])


def test_incoming_request_id_is_reused_and_trace_continues_as_child(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {
        **auth_header(),
        "X-Request-ID": "req-123",
        "traceparent": f"00-{trace_id}-{parent}-01",
    }
    response = httpx.get(gateway_url + "/api/v1/posts", headers=headers)
    assert response.headers["x-request-id"] == "req-123"
    forwarded = echo(response)["headers"]
    assert forwarded["x-request-id"] == "req-123"
    _, forwarded_trace, span, _ = forwarded["traceparent"].split("-")
    assert forwarded_trace == trace_id
    assert span != parent


def test_body_over_the_cap_is_413_and_upstream_is_not_called(
    gateway_url: str, echo_upstreams: Upstreams, auth_header: AuthHeader
) -> None:
    response = httpx.post(gateway_url + "/api/v1/posts", headers=auth_header(), content=b"x" * 2048)
    assert_problem(response, 413)

    def chunked() -> Any:
        for _ in range(4):
            yield b"y" * 400

    response = httpx.post(gateway_url + "/api/v1/posts", headers=auth_header(), content=chunked())
    assert_problem(response, 413)
    assert echo_upstreams["posts"][0].calls == []


def test_body_within_the_cap_and_status_pass_through(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    response = httpx.post(gateway_url + "/api/v1/posts", headers=auth_header(), content=b"z" * 1000)
    assert response.status_code == 201
    assert echo(response)["body"] == "z" * 1000
    assert response.headers["x-upstream"] == "posts"
    assert "keep-alive" not in response.headers.get("connection", "")


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_other_methods_are_forwarded(
    gateway_url: str, auth_header: AuthHeader, method: str
) -> None:
    response = httpx.request(method, gateway_url + "/api/v1/groups/1", headers=auth_header())
    assert response.status_code == 200
    assert echo(response)["method"] == method


def test_percent_encoding_in_path_is_kept(gateway_url: str, auth_header: AuthHeader) -> None:
    response = httpx.get(gateway_url + "/api/v1/search/a%2Fb%20c", headers=auth_header())
    assert echo(response)["raw_path"] == "/search/a%2Fb%20c"


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v1/postsx", "/api/v1", "/scim/v1", "/metrics"]
)
def test_unknown_path_is_404_problem(gateway_url: str, path: str) -> None:
    assert_problem(httpx.get(gateway_url + path), 404)


@pytest.mark.parametrize("path", ["/", "/questions/42", "/static/app.css", "/api", "/apix/v1"])
def test_every_path_outside_the_api_goes_to_the_web_app_without_a_token_check(
    gateway_url: str, path: str
) -> None:
    response = httpx.get(gateway_url + path)  # no token: the web app has its own sessions
    seen = echo(response)
    assert seen["service"] == "web"
    assert seen["raw_path"] == path
    assert "authorization" not in seen["headers"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_upstream_down_is_503_problem_with_retry_after(
    gateway_url: str, auth_header: AuthHeader, method: str
) -> None:
    """A service restarting (nothing listens): the request never reached it, retry later."""
    response = httpx.request(
        method, gateway_url + "/api/v1/digests", headers=auth_header(), timeout=10
    )
    problem = assert_problem(response, 503)
    assert "digests" in problem["detail"]
    assert int(response.headers["retry-after"]) > 0


def test_slow_upstream_is_504_problem_without_hanging(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    started = time.monotonic()
    response = httpx.get(gateway_url + "/api/v1/posts/slow", headers=auth_header(), timeout=10)
    assert_problem(response, 504)
    assert time.monotonic() - started < 3
    # The gateway still serves afterwards.
    assert httpx.get(gateway_url + "/api/v1/posts", headers=auth_header()).status_code == 200


def test_large_chunked_response_streams_through_intact(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    with httpx.stream("GET", gateway_url + "/api/v1/posts/big", headers=auth_header()) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_bytes())
    assert body == b"".join(bytes([65 + index]) * 300_000 for index in range(5))


def test_keep_alive_connections_survive_many_requests(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    with httpx.Client(headers=auth_header()) as client:
        for index in range(50):
            response = client.get(gateway_url + "/api/v1/posts", params={"n": index})
            assert echo(response)["query"] == f"n={index}"


def test_upstream_closing_idle_keep_alive_connections_is_harmless(
    tmp_path: Path, auth_header: AuthHeader, token_issuer: TokenIssuer
) -> None:
    upstream = EchoUpstream("identity", jwks=token_issuer.jwks())
    with serve(upstream, timeout_keep_alive=1) as identity:
        gateway = create_app(gateway_settings(tmp_path, {"identity": identity}))
        with serve(gateway) as url:
            for _ in range(3):
                for method in ("GET", "POST"):
                    response = httpx.request(method, url + "/api/v1/users", headers=auth_header())
                    assert response.status_code in (200, 201)
                time.sleep(1.5)  # the upstream closes the idle connection meanwhile


def test_unreachable_signing_keys_are_503_not_401(tmp_path: Path) -> None:
    """Identity down: a new token cannot be checked, which is not the client's fault."""
    token = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=60,
    ).issue(user_id=uuid4(), handle="ada")
    with serve(create_app(gateway_settings(tmp_path, {}))) as url:
        response = httpx.get(
            url + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    problem = assert_problem(response, 503)
    assert "signing keys" in problem["detail"]
    assert response.headers["retry-after"] == "5"


def forwarded_for(response: httpx.Response) -> list[str]:
    """Every X-Forwarded-For line the upstream received."""
    return [value for name, value in response.json()["headers"] if name == "x-forwarded-for"]


@pytest.fixture
def remote_gateway(tmp_path: Path) -> Any:
    """The gateway as a remote client meets it: uvicorn trusts no peer's X-Forwarded-For
    (`FORWARDED_ALLOW_IPS` names none), the web app is an echo upstream."""
    with serve(EchoUpstream("web")) as web:
        app = create_app(gateway_settings(tmp_path, {"web": web}))
        with serve(app, forwarded_allow_ips="") as url:
            yield url


def test_a_clients_own_x_forwarded_for_is_never_believed(remote_gateway: str) -> None:
    # Say, to spread sign-in attempts over many per-address buckets.
    response = httpx.get(remote_gateway + "/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert forwarded_for(response) == ["127.0.0.1"]


def test_the_web_apps_x_forwarded_for_is_believed_with_the_shared_key_only(
    remote_gateway: str, tmp_path: Path
) -> None:
    key = (tmp_path / "forwarding.key").read_text().strip()
    for presented, expected in ((key, "203.0.113.9"), ("a guess", "127.0.0.1")):
        response = httpx.get(
            remote_gateway + "/questions",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Knowflow-Forwarding-Key": presented},
        )
        assert forwarded_for(response) == [expected]
        # The key itself never leaves the gateway.
        names = {name for name, _ in response.json()["headers"]}
        assert "x-knowflow-forwarding-key" not in names
