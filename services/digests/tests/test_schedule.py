"""The schedule sends each period once its window has ended, survives errors, and stops."""

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.digests import scheduler
from services.digests.main import create_app
from services.digests.models import DigestRun
from services.digests.scheduler import DigestSettings, run_schedule, send_due_digests
from services.digests.tests.factories import content
from shared.events.contracts import FollowCreated
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import ServiceClientFactory, wait_for

Publish = Callable[..., None]


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def runs(client: TestClient) -> list[tuple[str, datetime]]:
    with Session(engine_of(client)) as session:
        rows = session.exec(select(DigestRun)).all()
    return sorted((row.period, row.window_end) for row in rows)


def test_due_digests_go_out_once_per_period_and_window(
    client: TestClient, publish: Publish
) -> None:
    reader, author = new_id(), new_id()
    publish(
        content(author=author, hours_ago=3),
        FollowCreated(follower_id=reader, target_type="user", target=str(author)),
    )
    now = utcnow()
    # The boundary is the last whole hour at least a minute (the settling time) ago.
    hour = (now - scheduler.SETTLE).hour
    reports = send_due_digests(engine=engine_of(client), now=now, hour_utc=hour)
    assert [(r.period, r.already_sent) for r in reports] == [
        ("daily", False),
        ("weekly", False),
    ]
    daily = reports[0]
    assert daily.window_end == (now - scheduler.SETTLE).replace(minute=0, second=0, microsecond=0)
    assert daily.sent == 1
    with Session(engine_of(client)) as session:
        [row] = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.payload).contains('"daily"'))
        ).all()
    assert json.loads(row.payload)["data"]["user_id"] == str(reader)

    later = send_due_digests(
        engine=engine_of(client), now=now + timedelta(minutes=5), hour_utc=hour
    )
    assert [(r.sent, r.already_sent) for r in later] == [(0, True), (0, True)]


def test_a_boundary_within_the_settling_minute_is_not_sent_yet(client: TestClient) -> None:
    now = utcnow().replace(minute=0, second=30, microsecond=0)
    reports = send_due_digests(engine=engine_of(client), now=now, hour_utc=now.hour)
    # 30 seconds after today's boundary: still the window that ended a day earlier.
    assert reports[0].window_end == now.replace(second=0) - timedelta(days=1)


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
        settings = DigestSettings(tick_seconds=0.01, hour_utc=6)
        task = asyncio.create_task(run_schedule(engine=None, settings=settings))  # type: ignore[arg-type]
        assert await asyncio.to_thread(third_call.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert len(calls) >= 3


def test_the_service_runs_the_schedule_until_it_stops(
    service_client: ServiceClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWFLOW_DIGEST_SCHEDULE_ENABLED", "true")
    monkeypatch.setenv("KNOWFLOW_DIGEST_TICK_SECONDS", "0.1")
    with service_client(create_app, name="digests") as running:
        wait_for(lambda: [period for period, _ in runs(running)] == ["daily", "weekly"])
        task = running.app.state.digest_schedule  # type: ignore[attr-defined]
        assert not task.done()
    assert task.cancelled()


def test_the_schedule_can_be_switched_off(client: TestClient) -> None:
    assert client.app.state.digest_schedule is None  # type: ignore[attr-defined]
