"""The upstream pool against real uvicorn servers: what is reused, what is retried."""

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import uvloop
from starlette.types import Receive, Scope, Send

from gateway.main import create_app
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve
from gateway.upstream import UpstreamPool, UpstreamUnreachable
from shared.auth import TokenIssuer
from shared.natsserver import free_port

AuthHeader = Callable[..., dict[str, str]]


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run on uvloop, the loop the gateway runs on."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(scenario())


class LateCloser:
    """Answers 500 to GET /late-close, then fails after the response: uvicorn closes the
    connection 0.3 s later, killing a request that was sent on it meanwhile."""

    def __init__(self) -> None:
        self.posts = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        if scope["method"] == "POST":
            self.posts += 1
            await asyncio.sleep(0.5)  # still working when the connection is closed
        status = 500 if scope["path"].endswith("/late-close") else 201
        body = b'{"status": %d}' % status
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if status == 500:
            await asyncio.sleep(0.3)
            raise RuntimeError("failing after the response was sent")


def test_a_500_answer_is_not_pooled_so_the_next_post_gets_a_fresh_connection(
    tmp_path: Path, token_issuer: TokenIssuer, auth_header: AuthHeader
) -> None:
    upstream = LateCloser()
    identity = EchoUpstream("identity", jwks=token_issuer.jwks())
    with serve(upstream) as posts, serve(identity) as identity_url:
        gateway = create_app(gateway_settings(tmp_path, {"posts": posts, "identity": identity_url}))
        with serve(gateway) as url, httpx.Client(headers=auth_header()) as client:
            for _ in range(3):
                assert client.get(url + "/api/v1/posts/late-close").status_code == 500
                assert client.post(url + "/api/v1/posts").status_code == 201
    assert upstream.posts == 3  # never sent twice


def test_a_connection_the_upstream_closed_is_not_reused_even_before_the_loop_noticed() -> None:
    upstream = EchoUpstream("posts")
    with serve(upstream, timeout_keep_alive=1) as url:

        async def scenario() -> int:
            pool = UpstreamPool(url, connect_timeout=2, read_timeout=5, idle_timeout=30)
            connection = await pool.request(b"GET", b"/posts", [])
            await connection.read_all(5)
            pool.release(connection)
            assert len(pool.idle) == 1
            # Block the loop: the upstream's FIN arrives but no callback has run yet.
            time.sleep(1.5)  # noqa: ASYNC251 (blocking on purpose)
            connection = await pool.request(b"POST", b"/posts", [], b"{}")
            await connection.read_all(5)
            pool.release(connection)
            pool.close()
            return connection.status

        assert run(scenario) == 201
    assert [call["method"] for call in upstream.calls] == ["GET", "POST"]


def test_an_upstream_that_is_down_is_unreachable_not_just_unavailable() -> None:
    async def scenario() -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{free_port()}", connect_timeout=2, read_timeout=5)
        try:
            await pool.request(b"POST", b"/posts", [], b"{}")
        except UpstreamUnreachable:
            return
        raise AssertionError("expected UpstreamUnreachable")

    run(scenario)


def test_a_service_restarting_behind_the_gateway_is_503_then_served_at_once(
    tmp_path: Path, token_issuer: TokenIssuer, auth_header: AuthHeader
) -> None:
    port = free_port()
    upstream = EchoUpstream("posts")
    identity = EchoUpstream("identity", jwks=token_issuer.jwks())
    posts = f"http://127.0.0.1:{port}"
    with serve(identity) as identity_url:
        gateway = create_app(gateway_settings(tmp_path, {"posts": posts, "identity": identity_url}))
        with serve(gateway) as url, httpx.Client(headers=auth_header(), timeout=10) as client:
            with serve(upstream, port=port):
                assert client.post(url + "/api/v1/posts").status_code == 201  # pooled now
            down = client.post(url + "/api/v1/posts")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "2"
            assert down.headers["content-type"] == "application/problem+json"
            with serve(upstream, port=port):
                statuses = [client.post(url + "/api/v1/posts").status_code for _ in range(3)]
    assert statuses == [201, 201, 201]
    assert len(upstream.calls) == 4
