"""How the gateway relays event streams, against a real upstream process that misbehaves
on cue: every event flushed as it comes, a dead or silent upstream ends the client's
stream, a client that leaves closes the upstream connection."""

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send

from gateway.main import create_app
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve, serve_gateway
from shared.auth import TokenIssuer
from shared.ids import new_id
from shared.testing.fixtures import wait_for
from tests.gateway.sse_client import EventStream

HEARTBEAT = 0.2  # the gateway closes a stream silent for three of them
STREAM = "/api/v1/notifications/stream"


@dataclass
class StreamingUpstream:
    """Answers the stream path with `text/event-stream`; what follows depends on `?mode=`.

    - `gated`: event 1, then event 2 only once the test says it received event 1;
    - `die`: event 1, then the connection breaks (an unhandled error mid-response);
    - `silent`: event 1, then nothing at all.
    """

    gate: threading.Event = field(default_factory=threading.Event)
    disconnects: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        mode = scope["query_string"].decode().removeprefix("mode=")
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def event(number: int) -> None:
            body = f'id: {number}\nevent: notification\ndata: {{"n": {number}}}\n\n'.encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnects += 1

        watcher = asyncio.create_task(watch())
        await event(1)
        if mode == "gated":
            opened = asyncio.create_task(asyncio.to_thread(self.gate.wait, 10))
            await asyncio.wait([opened, watcher], return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                return  # the client left first
            await event(2)
            await send({"type": "http.response.body", "body": b""})
        elif mode == "die":
            await asyncio.sleep(0.1)
            raise RuntimeError("the upstream dies mid-stream")
        else:
            await watcher  # silent until the gateway goes away
            return
        await watcher


@pytest.fixture
def upstream() -> StreamingUpstream:
    return StreamingUpstream()


@pytest.fixture
def gateway(
    tmp_path: Path, token_issuer: TokenIssuer, upstream: StreamingUpstream
) -> Iterator[str]:
    with (
        serve(EchoUpstream("identity", jwks=token_issuer.jwks())) as identity,
        serve(upstream) as notifications,
    ):
        settings = gateway_settings(
            tmp_path,
            {"identity": identity},
            notifications_url=notifications,
            sse_heartbeat_seconds=HEARTBEAT,
            rate_limit_enabled=False,
        )
        with serve_gateway(create_app(settings)) as url:
            yield url


def open_stream(gateway: str, token_issuer: TokenIssuer, mode: str) -> EventStream:
    token = token_issuer.issue(user_id=new_id(), handle="ben")
    return EventStream(f"{gateway}{STREAM}?mode={mode}", {"authorization": f"Bearer {token}"})


def test_each_event_reaches_the_client_before_the_upstream_sends_the_next(
    gateway: str, token_issuer: TokenIssuer, upstream: StreamingUpstream
) -> None:
    with open_stream(gateway, token_issuer, "gated") as stream:
        assert stream.next().data == {"n": 1}  # a buffering gateway would hold it back
        upstream.gate.set()
        assert stream.next().data == {"n": 2}
        assert stream.ended.wait(5) and stream.finished


def test_an_upstream_that_dies_ends_the_clients_stream_cleanly(
    gateway: str, token_issuer: TokenIssuer
) -> None:
    with open_stream(gateway, token_issuer, "die") as stream:
        assert stream.next().data == {"n": 1}
        assert stream.ended.wait(5)
        assert stream.finished  # a complete answer: EventSource reconnects with Last-Event-ID


def test_a_stream_silent_for_three_heartbeats_is_closed_on_both_sides(
    gateway: str, token_issuer: TokenIssuer, upstream: StreamingUpstream
) -> None:
    with open_stream(gateway, token_issuer, "silent") as stream:
        assert stream.next().data == {"n": 1}
        started = time.monotonic()
        assert stream.ended.wait(5)
        assert time.monotonic() - started >= 2 * HEARTBEAT
        wait_for(lambda: upstream.disconnects == 1, timeout=5)


def test_a_client_that_leaves_closes_the_upstream_connection_at_once(
    gateway: str, token_issuer: TokenIssuer, upstream: StreamingUpstream
) -> None:
    stream = open_stream(gateway, token_issuer, "gated")
    assert stream.next().data == {"n": 1}
    stream.close()
    # Well before the idle timeout (three heartbeats) could have closed it.
    wait_for(lambda: upstream.disconnects == 1, timeout=2 * HEARTBEAT)
    upstream.gate.set()  # lets the upstream's waiting thread go
