"""Real HTTP on both sides: upstreams and the gateway run under uvicorn on free ports."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.main import create_app
from gateway.server import GATEWAY_UVICORN_OPTIONS
from shared.auth import TokenIssuer
from shared.natsserver import free_port
from shared.settings import Settings


@contextmanager
def serve(app: ASGIApp, port: int | None = None, **options: Any) -> Iterator[str]:
    """Run `app` under uvicorn (uvloop + httptools) in a thread; yields its base URL."""
    port = port or free_port()
    options = {"http": "httptools", **options}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", log_level="warning", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class EchoUpstream:
    """A small real upstream: answers with what it received, and records every call."""

    def __init__(self, name: str, jwks: dict[str, Any] | None = None) -> None:
        self.name = name
        self.jwks = jwks
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/.well-known/jwks.json" and self.jwks is not None:
            await self._json(send, 200, self.jwks)
            return
        if path in ("/readyz", "/openapi.json"):
            await self._json(send, 200 if path == "/readyz" else 404, {"status": "ready"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        call = {
            "service": self.name,
            "method": scope["method"],
            "path": path,
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "body": body.decode("latin-1"),
        }
        self.calls.append(call)
        if path.endswith("/slow"):
            await asyncio.sleep(5)
        if path.endswith("/big"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")],
                }
            )
            for index in range(5):
                chunk = bytes([65 + index]) * 300_000
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        status = 201 if scope["method"] == "POST" else 200
        extra = [(b"x-upstream", self.name.encode()), (b"connection", b"keep-alive")]
        if path.endswith("/cached"):
            extra.append((b"cache-control", b"private, max-age=60"))
        await self._json(send, status, call, extra)

    async def _json(
        self,
        send: Send,
        status: int,
        payload: Any,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps(payload).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve_gateway(app: ASGIApp, port: int | None = None) -> AbstractContextManager[str]:
    """Serve the gateway the way deploy/ starts it (its own uvicorn options)."""
    return serve(app, port, **GATEWAY_UVICORN_OPTIONS)


def exchange(url: str, head: bytes, *, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request head, read one answer: (status, headers, body)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            top, _, body = data.partition(b"\r\n\r\n")
            if b"\r\n\r\n" in data and b"content-length" in top.lower():
                length = int(top.lower().split(b"content-length: ", 1)[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {
        name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])
    }
    return status, headers, body


GatewayFactory = Callable[..., Any]


@pytest.fixture
def echo_upstreams(token_issuer: TokenIssuer) -> Iterator[dict[str, tuple[EchoUpstream, str]]]:
    """identity (serving the test JWKS), posts, search and web echo upstreams; digests is
    down."""
    upstreams = {
        "identity": EchoUpstream("identity", jwks=token_issuer.jwks()),
        "posts": EchoUpstream("posts"),
        "search": EchoUpstream("search"),
        "web": EchoUpstream("web"),
    }
    with (
        serve(upstreams["identity"]) as identity,
        serve(upstreams["posts"]) as posts,
        serve(upstreams["search"]) as search,
        serve(upstreams["web"]) as web,
    ):
        yield {
            "identity": (upstreams["identity"], identity),
            "posts": (upstreams["posts"], posts),
            "search": (upstreams["search"], search),
            "web": (upstreams["web"], web),
        }


def gateway_settings(tmp_path: Path, urls: dict[str, str], **overrides: Any) -> Settings:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    values: dict[str, Any] = {
        "identity_url": urls.get("identity", down),
        "posts_url": urls.get("posts", down),
        "search_service_url": urls.get("search", down),
        "digests_url": urls.get("digests", down),
        "notifications_url": urls.get("notifications", down),
        "web_url": urls.get("web", down),
        "jwt_private_key_file": tmp_path / "unused.pem",
        "forwarding_key_file": tmp_path / "forwarding.key",
        "log_json": False,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def gateway_url(
    tmp_path: Path, echo_upstreams: dict[str, tuple[EchoUpstream, str]]
) -> Iterator[str]:
    """The gateway over the echo upstreams: 1 KiB body cap, 1 s read timeout."""
    urls = {name: url for name, (_, url) in echo_upstreams.items()}
    app = create_app(gateway_settings(tmp_path, urls, max_body_bytes=1024), read_timeout=1.0)
    with serve_gateway(app) as url:
        yield url
