"""The schedule sends each person's window once it has ended, survives errors, and stops."""

import asyncio
import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.digests import scheduler
from services.digests.delivery import SETTLE, send_due_digests
from services.digests.main import create_app
from services.digests.models import DigestContent, DigestPreference, DigestSent
from services.digests.scheduler import DigestSettings, run_schedule
from services.digests.tests.factories import content
from shared.auth import TokenIssuer, TokenVerifier
from shared.events.contracts import FollowCreated, NotificationPreferencesUpdated
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.settings import Settings
from shared.testing.backends import fresh_database
from shared.testing.fixtures import ServiceClientFactory, wait_for

Publish = Callable[..., None]


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def sent_windows(client: TestClient) -> list[tuple[str, str]]:
    with Session(engine_of(client)) as session:
        rows = session.exec(select(DigestSent)).all()
    return sorted((str(row.user_id), row.period) for row in rows)


def test_due_digests_go_out_once_per_person_and_window(
    client: TestClient, publish: Publish
) -> None:
    reader, author = new_id(), new_id()
    now = utcnow()
    publish(
        content(author=author, hours_ago=3),
        FollowCreated(follower_id=reader, target_type="user", target=str(author)),
        NotificationPreferencesUpdated(
            user_id=reader,
            digest_frequency="daily",
            digest_hour=(now - SETTLE).hour,
            timezone="UTC",
            version=1,
        ),
    )
    report = send_due_digests(engine=engine_of(client), now=now)
    assert report.sent == 1
    with Session(engine_of(client)) as session:
        [row] = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.payload).contains('"daily"'))
        ).all()
    assert json.loads(row.payload)["data"]["user_id"] == str(reader)
    later = send_due_digests(engine=engine_of(client), now=now + timedelta(minutes=5))
    assert (later.sent, later.already_sent) == (0, 1)


def test_a_boundary_within_the_settling_minute_is_not_sent_yet(
    client: TestClient, publish: Publish
) -> None:
    reader = new_id()
    now = utcnow().replace(minute=0, second=30, microsecond=0)
    publish(
        FollowCreated(follower_id=reader, target_type="tag", target="x"),
        NotificationPreferencesUpdated(
            user_id=reader,
            digest_frequency="daily",
            digest_hour=now.hour,
            timezone="UTC",
            version=1,
        ),
    )
    send_due_digests(engine=engine_of(client), now=now)
    with Session(engine_of(client)) as session:
        [row] = session.exec(select(DigestSent)).all()
    # 30 seconds after today's boundary: still the window that ended a day earlier.
    assert row.window_end == now.replace(second=0) - timedelta(days=1)


def test_the_schedule_logs_an_error_and_keeps_going(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[datetime] = []
    third_call = threading.Event()

    def flaky(**kwargs: Any) -> list[Any]:
        calls.append(kwargs["now"])
        if len(calls) >= 3:
            third_call.set()
        if len(calls) == 1:
            raise RuntimeError("database away")
        return []

    monkeypatch.setattr(scheduler, "send_due_digests", flaky)

    async def scenario() -> None:
        settings = DigestSettings(tick_seconds=0.01)
        task = asyncio.create_task(run_schedule(engine=None, settings=settings))  # type: ignore[arg-type]
        assert await asyncio.to_thread(third_call.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert len(calls) >= 3


def test_the_service_runs_the_schedule_until_it_stops(
    service_client: ServiceClientFactory,
    publish_events: Publish,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KNOWFLOW_DIGEST_SCHEDULE_ENABLED", "true")
    monkeypatch.setenv("KNOWFLOW_DIGEST_TICK_SECONDS", "0.1")
    with service_client(create_app, name="digests") as running:
        reader = new_id()
        publish_events(FollowCreated(follower_id=reader, target_type="tag", target="x"))
        wait_for(lambda: sent_windows(running) == [(str(reader), "weekly")])
        task = running.app.state.digest_schedule  # type: ignore[attr-defined]
        assert not task.done()
    assert task.cancelled()


def test_the_schedule_can_be_switched_off(client: TestClient) -> None:
    assert client.app.state.digest_schedule is None  # type: ignore[attr-defined]


def test_two_replicas_on_one_database_send_a_persons_window_once(
    tmp_path: Path,
    nats_url: str,
    token_issuer: TokenIssuer,
    publish_events: Publish,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KNOWFLOW_DIGEST_SCHEDULE_ENABLED", "true")
    monkeypatch.setenv("KNOWFLOW_DIGEST_TICK_SECONDS", "0.05")
    reader, author = new_id(), new_id()
    with fresh_database(tmp_path, "digests") as database_url, ExitStack() as stack:
        replicas = []
        for index in range(2):
            settings = Settings(
                service_name="digests",
                database_url=database_url,
                nats_url=nats_url,
                jwt_private_key_file=tmp_path / f"jwt{index}.pem",
                log_json=False,
            )
            verifier = TokenVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=token_issuer.jwks()
            )
            app = create_app(settings, verifier)
            replicas.append(stack.enter_context(TestClient(app, raise_server_exceptions=False)))
        # The schedule is projected before the follow makes the reader a recipient (they are
        # separate consumers): the other way round, a tick in between would rightly record
        # the default (weekly) window first.
        publish_events(
            NotificationPreferencesUpdated(
                user_id=reader,
                digest_frequency="daily",
                digest_hour=(utcnow() - SETTLE).hour,
                timezone="UTC",
                version=1,
            )
        )
        wait_for(lambda: has_schedule(replicas[0], reader))
        # The post, written three hours ago, is projected before the follow for the same
        # reason: a tick between them would rightly record that the window had nothing new.
        post = content(author=author, hours_ago=3)
        publish_events(post)
        wait_for(lambda: has_content(replicas[0], post.content_id))
        publish_events(FollowCreated(follower_id=reader, target_type="user", target=str(author)))
        wait_for(lambda: ready_count(replicas[0]) == 1)
        time.sleep(0.5)  # ten more ticks in each replica
        assert ready_count(replicas[0]) == 1
        assert sent_windows(replicas[1]) == [(str(reader), "daily")]


def has_schedule(client: TestClient, user_id: UUID) -> bool:
    with Session(engine_of(client)) as session:
        return session.get(DigestPreference, user_id) is not None


def has_content(client: TestClient, content_id: UUID) -> bool:
    with Session(engine_of(client)) as session:
        return session.get(DigestContent, content_id) is not None


def ready_count(client: TestClient) -> int:
    with Session(engine_of(client)) as session:
        rows = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.payload).contains("digest.ready"))
        ).all()
    return len(rows)
