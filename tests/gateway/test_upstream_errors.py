"""A service's 500 must not poison the gateway's keep-alive pool (issue 7, defect 2).

The upstream is a real service app (`shared.web.create_service_app`, real NATS and
SQLite) under real uvicorn, with one route that raises.
"""

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.main import create_app
from gateway.tests.conftest import gateway_settings, serve
from shared.auth import TokenIssuer, TokenVerifier
from shared.idempotency import IdempotentRoute
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app

AuthHeader = Callable[..., dict[str, str]]


@pytest.fixture
def boom_service(tmp_path: Path, nats_url: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A service whose GET /posts/boom raises and whose POST /posts records what it got."""
    created: list[dict[str, Any]] = []
    router = APIRouter(route_class=IdempotentRoute)  # every service POST is (shared.web)

    @router.get("/posts/boom")
    async def boom() -> None:
        raise RuntimeError("an unexpected bug")

    @router.post("/posts")
    async def create() -> JSONResponse:
        created.append({"n": len(created) + 1})
        return JSONResponse(created[-1], status_code=201)

    spec = ServiceSpec(name="posts", title="boom", routers=[router], tables=[])
    settings = Settings(
        service_name="posts",
        database_url=f"sqlite:///{tmp_path / 'posts.db'}",
        nats_url=nats_url,
        jwt_private_key_file=tmp_path / "jwt.pem",
        log_json=False,
    )
    with serve(create_service_app(spec, settings=settings)) as url:
        yield url, created


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response with a Content-Length: (head, body); b"" head at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_a_service_answers_an_unhandled_error_and_keeps_the_connection(
    boom_service: tuple[str, list[dict[str, Any]]],
) -> None:
    url, created = boom_service
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /posts/boom HTTP/1.1\r\nhost: posts\r\n\r\n")
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 500")
        assert b"content-type: application/problem+json" in head.lower()
        assert b"connection: close" not in head.lower()
        problem = json.loads(body)
        sock.settimeout(2)
        # The same connection still serves: uvicorn did not close it after the error.
        sock.sendall(b"POST /posts HTTP/1.1\r\nhost: posts\r\ncontent-length: 0\r\n\r\n")
        head, _ = read_response(sock)
    assert head.startswith(b"HTTP/1.1 201"), head
    assert len(created) == 1
    assert problem["status"] == 500 and problem["request_id"]


def test_a_500_does_not_turn_the_next_post_through_the_gateway_into_a_502(
    tmp_path: Path,
    boom_service: tuple[str, list[dict[str, Any]]],
    token_issuer: TokenIssuer,
    auth_header: AuthHeader,
) -> None:
    url, created = boom_service
    verifier = TokenVerifier(
        issuer="knowflow-identity", audience="knowflow", jwks=token_issuer.jwks()
    )
    gateway = create_app(gateway_settings(tmp_path, {"posts": url}), verifier=verifier)
    statuses = []
    with serve(gateway) as gateway_url, httpx.Client(headers=auth_header()) as client:
        for _ in range(20):
            assert client.get(gateway_url + "/api/v1/posts/boom").status_code == 500
            statuses.append(client.post(gateway_url + "/api/v1/posts").status_code)
    assert statuses == [201] * 20
    assert len(created) == 20  # each POST reached the service exactly once
