"""What the gateway adds at the edge: security headers, CORS, and what it does not expose."""

import base64
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.main import create_app
from gateway.routing import ROUTES, RouteTable
from gateway.tests.conftest import EchoUpstream, exchange, gateway_settings, serve_gateway

Upstreams = dict[str, tuple[EchoUpstream, str]]
AuthHeader = Callable[..., dict[str, str]]

FRONT_END = "https://app.example.org"


def assert_edge_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "server" not in headers
    assert "strict-transport-security" not in headers


def test_every_kind_of_response_carries_the_security_headers_and_no_server_header(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    responses = [
        httpx.get(gateway_url + "/api/v1/posts", headers=auth_header()),  # forwarded
        httpx.get(gateway_url + "/api/v1/posts"),  # 401 problem
        httpx.get(gateway_url + "/api/v1/nothing"),  # 404 problem
        httpx.get(gateway_url + "/api/v1/digests", headers=auth_header()),  # 503, down
        httpx.get(gateway_url + "/healthz"),
        httpx.get(gateway_url + "/openapi.json"),
        httpx.get(gateway_url + "/docs"),
    ]
    assert [response.status_code for response in responses] == [200, 401, 404, 503, 200, 200, 200]
    for response in responses:
        assert_edge_headers(response)


def test_hsts_is_sent_only_when_configured(tmp_path: Path, echo_upstreams: Upstreams) -> None:
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    with serve_gateway(create_app(gateway_settings(tmp_path, urls, hsts_max_age=31536000))) as url:
        response = httpx.get(url + "/api/v1/auth/jwks")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_answers_that_may_be_personal_are_not_stored_unless_the_service_says_otherwise(
    gateway_url: str, auth_header: AuthHeader
) -> None:
    authenticated = httpx.get(gateway_url + "/api/v1/users/me", headers=auth_header())
    assert authenticated.headers["cache-control"] == "no-store"
    refused = httpx.get(gateway_url + "/api/v1/users/me", headers={"Authorization": "Bearer x"})
    assert refused.headers["cache-control"] == "no-store"
    login = httpx.post(gateway_url + "/api/v1/auth/login", json={})  # answers carry tokens
    assert login.headers["cache-control"] == "no-store"
    own = httpx.get(gateway_url + "/api/v1/users/cached", headers=auth_header())
    assert own.headers.get_list("cache-control") == ["private, max-age=60"]
    public = httpx.get(gateway_url + "/api/v1/auth/jwks")
    assert "cache-control" not in public.headers


def test_the_docs_page_policy_allows_its_own_inline_script_and_nothing_else_inline(
    gateway_url: str,
) -> None:
    response = httpx.get(gateway_url + "/docs")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy["script-src"].split()
    assert "'unsafe-inline'" not in policy["script-src"]
    # Its script comes from this origin (served by the gateway from a package: offline).
    sources = re.findall(r'<script src="([^"]+)"', response.text)
    assert sources == ["/docs/assets/swagger-ui-bundle.js"]
    assert "'self'" in policy["script-src"].split()
    assert httpx.get(gateway_url + sources[0]).status_code == 200
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"


def preflight(url: str, origin: str, method: str = "PATCH") -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return httpx.options(url + "/api/v1/posts/1", headers=headers)


def cors_headers(response: httpx.Response) -> set[str]:
    return {name for name in response.headers if name.startswith("access-control-")}


def test_cors_is_closed_by_default(gateway_url: str, auth_header: AuthHeader) -> None:
    assert cors_headers(preflight(gateway_url, FRONT_END)) == set()
    response = httpx.get(
        gateway_url + "/api/v1/posts", headers={**auth_header(), "Origin": FRONT_END}
    )
    assert response.status_code == 200
    assert cors_headers(response) == set()


@pytest.fixture
def cors_gateway(tmp_path: Path, echo_upstreams: Upstreams) -> Iterator[str]:
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    settings = gateway_settings(tmp_path, urls, cors_origins=[FRONT_END, "https://b.example"])
    with serve_gateway(create_app(settings)) as url:
        yield url


def test_a_preflight_from_an_allowed_origin_is_answered_204(
    cors_gateway: str, echo_upstreams: Upstreams
) -> None:
    response = preflight(cors_gateway, FRONT_END)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == FRONT_END
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert int(response.headers["access-control-max-age"]) > 0
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers
    assert_edge_headers(response)
    assert echo_upstreams["posts"][0].calls == []


def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_gateway: str) -> None:
    for response in (
        preflight(cors_gateway, "https://evil.example"),
        preflight(cors_gateway, FRONT_END, method="TRACE"),
    ):
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert cors_headers(response) == set()


def test_requests_from_an_allowed_origin_may_read_the_answer_others_may_not(
    cors_gateway: str, auth_header: AuthHeader
) -> None:
    allowed = httpx.get(
        cors_gateway + "/api/v1/posts", headers={**auth_header(), "Origin": FRONT_END}
    )
    assert allowed.headers["access-control-allow-origin"] == FRONT_END
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    assert "Origin" in allowed.headers["vary"]
    other = httpx.get(
        cors_gateway + "/api/v1/posts", headers={**auth_header(), "Origin": "https://evil.example"}
    )
    assert other.status_code == 200
    assert cors_headers(other) == set()


def test_gateway_metrics_are_not_served_without_a_configured_token(gateway_url: str) -> None:
    assert httpx.get(gateway_url + "/metrics").status_code == 404


def test_gateway_metrics_need_the_configured_token(
    tmp_path: Path, echo_upstreams: Upstreams
) -> None:
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    settings = gateway_settings(tmp_path, urls, metrics_token="s3cret")
    with serve_gateway(create_app(settings)) as url:
        anonymous = httpx.get(url + "/metrics")
        wrong = httpx.get(url + "/metrics", headers={"Authorization": "Bearer s3cre"})
        right = httpx.get(url + "/metrics", headers={"Authorization": "Bearer s3cret"})
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    assert "knowflow_gateway_requests_total" in right.text


INTERNAL = ("/metrics", "/healthz", "/readyz", "/openapi.json", "/docs")


def test_no_route_reaches_a_services_own_endpoints() -> None:
    table = RouteTable()
    for service in {route.service for route in ROUTES}:
        for path in INTERNAL:
            assert table.public_path(service, path) is None, (service, path)


@pytest.mark.parametrize(
    "suffix", ["/../metrics", "/%2e%2e/metrics", "/%2E%2E%2Fmetrics", "/x/../../metrics", "/./x"]
)
def test_dot_segments_are_refused_so_no_path_climbs_to_a_services_metrics(
    gateway_url: str, echo_upstreams: Upstreams, auth_header: AuthHeader, suffix: str
) -> None:
    authorization = auth_header()["Authorization"]
    for route in ROUTES:
        if route.exact:
            continue
        head = (
            f"GET {route.public}{suffix} HTTP/1.1\r\nhost: gateway\r\n"
            f"authorization: {authorization}\r\n\r\n"
        ).encode()
        status, headers, _ = exchange(gateway_url, head)
        assert status == 400, route.public
        assert headers["content-type"] == "application/problem+json"
    assert all(upstream.calls == [] for upstream, _ in echo_upstreams.values())
