"""What an attacker meets at the gateway of the running platform (real processes):
security headers, no server banner, closed CORS, capped request heads, unreachable
metrics and path tricks, and throttled logins.
"""

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from deploy.launch import Platform
from tests.e2e.test_knowledge_flow import PASSWORD, register

Json = dict[str, object]


@pytest.fixture(scope="module")
def account(gateway: httpx.Client) -> Json:
    return register(gateway, "edge_user")


def test_every_answer_carries_the_security_headers_and_no_server_banner(
    gateway: httpx.Client, account: Json
) -> None:
    headers = account["headers"]
    assert isinstance(headers, dict)
    answers = [
        gateway.get("/users/me", headers=headers),
        gateway.get(f"/posts/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=headers),
        gateway.get("/users/me"),
    ]
    assert [answer.status_code for answer in answers] == [200, 404, 401]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "server" not in answer.headers
        assert "strict-transport-security" not in answer.headers  # not configured for TLS
    assert answers[0].headers["cache-control"] == "no-store"  # authenticated
    assert answers[0].headers["ratelimit-policy"].startswith('"reads"')


def test_cors_is_closed_to_an_unlisted_origin(gateway: httpx.Client, account: Json) -> None:
    headers = account["headers"]
    assert isinstance(headers, dict)
    evil = {"Origin": "https://evil.example"}
    simple = gateway.get("/users/me", headers={**headers, **evil})
    assert simple.status_code == 200
    assert not any(name.startswith("access-control-") for name in simple.headers)
    preflight = gateway.options("/posts", headers={**evil, "Access-Control-Request-Method": "POST"})
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    assert preflight.status_code >= 400


def raw_exchange(platform: Platform, head: bytes) -> bytes:
    """Send bytes as they are (a client library would normalise `..` away)."""
    parts = urlsplit(platform.gateway_url)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as connection:
        connection.sendall(head)
        return connection.recv(65536)


def test_metrics_and_path_tricks_do_not_reach_the_services(
    platform: Platform, gateway: httpx.Client, account: Json
) -> None:
    headers = account["headers"]
    assert isinstance(headers, dict)
    assert httpx.get(f"{platform.gateway_url}/metrics").status_code == 404  # no token set
    assert gateway.get("/metrics", headers=headers).status_code == 404
    token = str(headers["Authorization"]).encode()
    for path in (b"/api/v1/posts/../../metrics", b"/api/v1/posts/./x", b"/api/v1/users/.."):
        answer = raw_exchange(
            platform,
            b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + token + b"\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 400"), (path, answer[:120])
        assert b"knowflow_http_requests" not in answer, path


def test_an_oversized_request_head_is_431_and_never_forwarded(platform: Platform) -> None:
    head = b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 40_000
    answer = raw_exchange(platform, head + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"application/problem+json" in answer


def test_five_failed_logins_throttle_the_username_even_for_the_right_password(
    gateway: httpx.Client,
) -> None:
    victim = register(gateway, "edge_victim")
    login = {"login": "edge_victim", "password": "wrong password"}
    failures = [gateway.post("/auth/login", json=login).status_code for _ in range(5)]
    assert failures == [401] * 5
    right = gateway.post("/auth/login", json={"login": "edge_victim", "password": PASSWORD})
    assert right.status_code == 429, right.text
    assert int(right.headers["retry-after"]) > 0
    assert right.headers["content-type"].startswith("application/problem+json")
    # Someone else's login is not throttled by the victim's bucket.
    other = gateway.post("/auth/login", json={"login": "edge_user", "password": PASSWORD})
    assert other.status_code == 200, other.text
    assert victim["user"]
