"""Live notifications through a real gateway and real notifications processes.

Two replicas of the notifications service share one database and one NATS server:
replica A (1 s heartbeat) sits behind the main gateway; replica B (a heartbeat far longer
than any wait here, so only a NATS wake-up can deliver in time) behind a second gateway.
Notifications are created the way the inbox's consumers create them: `do_notify` in a
committed transaction; a replica's outbox relay publishes the event.
"""

import asyncio
import functools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.main import create_app as create_gateway
from gateway.tests.conftest import EchoUpstream, gateway_settings, serve, serve_gateway
from services.notifications.models import Notification, NotifiedMembership
from services.notifications.service import do_notify
from shared.auth import TokenIssuer
from shared.db import make_engine
from shared.events.bus import Bus
from shared.events.contracts import AccessRevoked
from shared.events.envelope import subject_for, wrap
from shared.ids import new_id, utcnow
from shared.natsserver import free_port, start_nats_server
from shared.testing.backends import fresh_database
from shared.testing.fixtures import wait_for
from tests.gateway.sse_client import EventStream

HEARTBEAT_A = 1.0
HEARTBEAT_B = 120.0  # never reached in a test: B delivers only when NATS wakes it
STREAM = "/api/v1/notifications/stream"
METRICS_TOKEN = "live-test-metrics"


@dataclass
class LivePlatform:
    gateway_a: str
    gateway_b: str
    replica_a: str
    replica_b: str
    engine: Engine
    issuer: TokenIssuer
    replicas: dict[str, subprocess.Popen[bytes]]
    replica_env: dict[str, str]  # what a further replica is started with

    def token(self, user_id: UUID) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.issue(user_id=user_id, handle='u')}"}

    def stream(self, user_id: UUID, base: str | None = None, **headers: str) -> EventStream:
        return EventStream(f"{base or self.gateway_a}{STREAM}", {**self.token(user_id), **headers})

    def notify(self, user_id: UUID, *, group_id: UUID | None = None, title: str = "t") -> UUID:
        with Session(self.engine) as session:
            created = do_notify(
                session=session,
                user_id=user_id,
                kind="mention",
                dedupe_key=f"mention:{new_id()}",
                group_key="mention",
                title=title,
                reason="you were mentioned",
                url=f"/api/v1/posts/{new_id()}",
                group_id=group_id,
            )
            session.commit()
        assert created is not None
        return created.id

    def join(self, user_id: UUID, group_id: UUID, *, active: bool = True) -> None:
        with Session(self.engine) as session:
            session.merge(NotifiedMembership(group_id=group_id, user_id=user_id, active=active))
            session.commit()


def start_replica(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "services.notifications.main:app"]
    command += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    command += ["--timeout-graceful-shutdown", "5", "--no-access-log"]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    tmp = tmp_path_factory.mktemp("live")
    issuer = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=900,
    )
    nats_port = free_port()
    nats = start_nats_server(tmp / "nats", port=nats_port)
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with (
            fresh_database(tmp, "notifications") as database_url,
            serve(EchoUpstream("identity", jwks=issuer.jwks())) as identity_url,
        ):
            base_env = {
                "KNOWFLOW_SERVICE_NAME": "notifications",
                "KNOWFLOW_DATABASE_URL": database_url,
                "KNOWFLOW_NATS_URL": f"nats://127.0.0.1:{nats_port}",
                "KNOWFLOW_IDENTITY_URL": identity_url,
                "KNOWFLOW_LOG_JSON": "false",
            }
            urls = {}
            for name, heartbeat in (("a", HEARTBEAT_A), ("b", HEARTBEAT_B)):
                port = free_port()
                env = {**base_env, "KNOWFLOW_SSE_HEARTBEAT_SECONDS": str(heartbeat)}
                replicas[name] = start_replica(port, env, tmp / f"replica-{name}.log")
                urls[name] = f"http://127.0.0.1:{port}"
                # One after the other: the first migrates the shared database.
                wait_for(functools.partial(ready, urls[name]), timeout=60)

            def gateway(url: str, heartbeat: float) -> Any:
                settings = gateway_settings(
                    tmp,
                    {"identity": identity_url},
                    notifications_url=url,
                    sse_heartbeat_seconds=heartbeat,
                    rate_limit_enabled=False,
                    metrics_token=METRICS_TOKEN,
                )
                return serve_gateway(create_gateway(settings))

            engine = make_engine(database_url)
            with (
                gateway(urls["a"], HEARTBEAT_A) as gateway_a,
                gateway(urls["b"], HEARTBEAT_B) as gateway_b,
            ):
                yield LivePlatform(
                    gateway_a, gateway_b, urls["a"], urls["b"], engine, issuer, replicas, base_env
                )
            engine.dispose()
            for replica in replicas.values():
                replica.terminate()
            for replica in replicas.values():
                replica.wait(timeout=20)
    finally:
        for replica in replicas.values():
            if replica.poll() is None:
                replica.kill()
        nats.terminate()
        nats.wait(timeout=10)


def gauge(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_notification_created_while_a_stream_is_open_arrives_with_the_unread_count(
    live: LivePlatform,
) -> None:
    ben = new_id()
    with live.stream(ben) as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert stream.next("unread").data == {"unread": 0}
        notification_id = live.notify(ben, title="Ada mentioned you")
        event = stream.next("notification")
        assert event.id == str(notification_id)
        assert event.data["id"] == str(notification_id)
        assert event.data["title"] == "Ada mentioned you"
        assert event.data["read"] is False
        assert stream.next("unread").data == {"unread": 1}


def test_heartbeats_arrive_on_an_idle_stream(live: LivePlatform) -> None:
    with live.stream(new_id()) as stream:
        wait_for(lambda: stream.comments >= 2, timeout=10)
        assert not stream.ended.is_set()


def test_last_event_id_resumes_with_exactly_the_missed_items(live: LivePlatform) -> None:
    ben = new_id()
    with live.stream(ben) as stream:
        seen = live.notify(ben)
        assert stream.next().id == str(seen)
    missed = [live.notify(ben), live.notify(ben)]
    with live.stream(ben, **{"last-event-id": str(seen)}) as resumed:
        got = [resumed.next().id, resumed.next().id]
        assert got == [str(item) for item in missed]
        # Nothing else follows (a heartbeat re-read sends no repeat).
        assert resumed.drain(wait=2.5 * HEARTBEAT_A) == []
    # The query parameter, for EventSource polyfills that cannot send the header.
    polyfill = EventStream(f"{live.gateway_a}{STREAM}?last_event_id={missed[0]}", live.token(ben))
    with polyfill:
        assert polyfill.next().id == str(missed[1])


def test_a_private_group_item_never_reaches_a_non_member_stream(live: LivePlatform) -> None:
    member, outsider, group = new_id(), new_id(), new_id()
    live.join(member, group)
    with live.stream(outsider) as outsider_stream, live.stream(member) as member_stream:
        secret = live.notify(member, group_id=group, title="secret")
        assert member_stream.next().id == str(secret)
        # A row for the outsider about the group (as if it raced their leaving): the
        # stream checks permission per item, so it is never sent, even at heartbeats.
        with Session(live.engine) as session:
            leaked = Notification(
                user_id=outsider,
                kind="mention",
                dedupe_key=f"x:{new_id()}",
                group_key="x",
                title="secret",
                reason="r",
                url="/x",
                group_id=group,
            )
            session.add(leaked)
            session.commit()
        public = live.notify(outsider, title="public")
        got = outsider_stream.next()
        assert got.id == str(public)
        assert outsider_stream.drain(wait=2.5 * HEARTBEAT_A) == []
        assert all(event.data != {"unread": 2} for event in outsider_stream.drain("unread"))


def test_items_of_a_group_the_person_left_are_not_sent_on_resume(live: LivePlatform) -> None:
    ben, group = new_id(), new_id()
    live.join(ben, group)
    with live.stream(ben) as stream:
        first = live.notify(ben)
        assert stream.next().id == str(first)
    live.notify(ben, group_id=group)
    kept = live.notify(ben)
    live.join(ben, group, active=False)  # Ben left the group
    with live.stream(ben, **{"last-event-id": str(first)}) as resumed:
        assert resumed.next().id == str(kept)
        assert resumed.drain(wait=2.5 * HEARTBEAT_A) == []


def test_the_sixth_stream_of_a_user_is_429_and_the_others_keep_working(
    live: LivePlatform,
) -> None:
    ben = new_id()
    streams = [live.stream(ben) for _ in range(5)]
    try:
        assert [stream.status for stream in streams] == [200] * 5
        sixth = live.stream(ben)
        assert sixth.status == 429
        assert sixth.response_headers["content-type"] == "application/problem+json"
        assert int(sixth.response_headers["retry-after"]) > 0
        assert b"at most 5 open event streams" in sixth.body
        with live.stream(new_id()) as someone_else:
            assert someone_else.status == 200  # not affected
        notification_id = live.notify(ben)
        assert [stream.next().id for stream in streams] == [str(notification_id)] * 5
        streams.pop().close()  # closing one frees its slot
        streams.append(live.stream(ben))
        assert streams[-1].status == 200
    finally:
        for stream in streams:
            stream.close()


def test_no_token_is_401_at_the_gateway_and_at_the_service(live: LivePlatform) -> None:
    for url in (f"{live.gateway_a}{STREAM}", f"{live.replica_a}/notifications/stream"):
        stream = EventStream(url)
        assert stream.status == 401
        assert stream.response_headers["content-type"] == "application/problem+json"
        assert stream.response_headers["www-authenticate"] == "Bearer"


def test_a_revoked_tokens_open_stream_ends_within_5_seconds_and_a_new_token_streams(
    live: LivePlatform,
) -> None:
    ben = new_id()
    # Through gateway B: its replica's heartbeat is far away, so only the revocation ends it.
    with live.stream(ben, live.gateway_b) as stream:
        assert stream.next("unread").data == {"unread": 0}
        time.sleep(0.005)
        started = time.monotonic()
        revoked = AccessRevoked(user_id=ben, not_before=utcnow(), reason="deactivated")
        asyncio.run(publish(live.replica_env["KNOWFLOW_NATS_URL"], revoked))
        assert stream.ended.wait(timeout=5), "the revoked token's stream is still open"
        print(f"stream ended {1000 * (time.monotonic() - started):.0f} ms after the revocation")
    with live.stream(ben, live.gateway_b) as fresh:
        assert fresh.status == 200
        assert fresh.next("unread").data == {"unread": 0}


async def publish(nats_url: str, data: AccessRevoked) -> None:
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-revoker")
    try:
        envelope = wrap(data, source="/knowflow/identity")
        subject = subject_for(envelope.type, envelope.audience)
        await bus.js.publish(subject, envelope.model_dump_json().encode())
    finally:
        await bus.close()


def test_a_malformed_last_event_id_is_a_400_and_an_unknown_parameter_a_422(
    live: LivePlatform,
) -> None:
    ben = new_id()
    assert live.stream(ben, **{"last-event-id": "not-an-id"}).status == 400
    polyfill = EventStream(f"{live.gateway_a}{STREAM}?since=1", live.token(ben))
    assert polyfill.status == 422


def test_a_notification_stored_through_one_replica_reaches_a_stream_held_by_the_other(
    live: LivePlatform,
) -> None:
    """B's heartbeat is far beyond the wait: only the NATS wake-up can bring it in time."""
    ben = new_id()
    with live.stream(ben, base=live.gateway_b) as on_b, live.stream(ben) as on_a:
        on_b.next("unread")
        notification_id = live.notify(ben)
        assert on_b.next(timeout=10).id == str(notification_id)
        assert on_a.next(timeout=10).id == str(notification_id)


def test_closing_the_client_closes_the_upstream_stream(live: LivePlatform) -> None:
    metric = "knowflow_notifications_open_streams"
    before = gauge(live.replica_a, metric)
    streams = [live.stream(new_id()) for _ in range(3)]
    wait_for(lambda: gauge(live.replica_a, metric) == before + 3, timeout=10)
    for stream in streams:
        stream.close()
    wait_for(lambda: gauge(live.replica_a, metric) == before, timeout=10)
    headers = {"authorization": f"Bearer {METRICS_TOKEN}"}
    wait_for(lambda: gauge(live.gateway_a, "knowflow_gateway_open_streams", headers) == 0)


def test_the_service_ends_its_streams_and_stops_promptly_on_sigterm(
    live: LivePlatform, tmp_path: Path
) -> None:
    """A third replica: its streams end (clients reconnect elsewhere) and it exits."""
    port = free_port()
    replica = start_replica(port, live.replica_env, tmp_path / "replica-c.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: ready(url), timeout=60)
        stream = EventStream(f"{url}/notifications/stream", live.token(new_id()))
        stream.next("unread")
        started = time.monotonic()
        replica.terminate()
        assert stream.ended.wait(10), "the stream was not ended"
        replica.wait(timeout=10)
        # Well before uvicorn's 5 s graceful timeout would have cut it.
        assert time.monotonic() - started < 4.5
    finally:
        if replica.poll() is None:
            replica.kill()
