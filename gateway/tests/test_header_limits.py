"""Request heads are capped at the gateway: 431 problem+json (issue 7, defect 5b).

Real HTTP over a socket: clients such as httpx refuse to send some of these heads.
"""

import json
from pathlib import Path

from gateway.main import create_app
from gateway.tests.conftest import EchoUpstream, exchange, gateway_settings, serve

Upstreams = dict[str, tuple[EchoUpstream, str]]


def request_head(path: str, headers: list[tuple[str, str]], method: str = "POST") -> bytes:
    """A head with an empty body: POST /api/v1/auth/login is forwarded without a token."""
    lines = [f"{method} {path} HTTP/1.1", "host: gateway", "content-length: 0"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def assert_431(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 431 and problem["title"] == "Request Header Fields Too Large"
    assert problem["request_id"] == headers["x-request-id"]
    assert headers["x-content-type-options"] == "nosniff"


def test_too_many_headers_are_431_and_not_forwarded(
    gateway_url: str, echo_upstreams: Upstreams
) -> None:
    head = request_head("/api/v1/auth/login", [(f"x-h{index}", "v") for index in range(101)])
    assert_431(*exchange(gateway_url, head))
    assert echo_upstreams["identity"][0].calls == []


def test_a_head_over_16_kib_is_431_and_not_forwarded(
    gateway_url: str, echo_upstreams: Upstreams
) -> None:
    head = request_head("/api/v1/auth/login", [("x-big", "a" * 17_000)])
    assert_431(*exchange(gateway_url, head))
    assert echo_upstreams["identity"][0].calls == []


def test_an_endless_header_is_cut_off_before_it_ends(gateway_url: str) -> None:
    """8 MB headers were read to the end and forwarded: now the head is refused once it
    passes the cap, without waiting for the rest."""
    head = b"GET /api/v1/auth/jwks HTTP/1.1\r\nhost: gateway\r\nx-endless: " + b"a" * 40_000
    assert_431(*exchange(gateway_url, head))


def test_a_head_within_the_caps_is_forwarded(gateway_url: str, echo_upstreams: Upstreams) -> None:
    headers = [(f"x-h{index}", "v" * 140) for index in range(90)]
    status, _, _ = exchange(gateway_url, request_head("/api/v1/auth/login", headers))
    assert status == 201
    assert len(echo_upstreams["identity"][0].calls) == 1


def test_the_caps_hold_under_a_plain_uvicorn_too(tmp_path: Path, echo_upstreams: Upstreams) -> None:
    """Run without the gateway's protocol (e.g. `uvicorn gateway.main:app`): the app refuses."""
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    settings = gateway_settings(tmp_path, urls, max_header_count=10, max_header_bytes=2048)
    with serve(create_app(settings)) as url:
        many = request_head("/api/v1/auth/login", [(f"x-h{index}", "v") for index in range(11)])
        assert_431(*exchange(url, many))
        big = request_head("/api/v1/auth/login", [("x-big", "a" * 2100)])
        assert_431(*exchange(url, big))
    assert echo_upstreams["identity"][0].calls == []
