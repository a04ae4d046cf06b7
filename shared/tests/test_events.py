"""The outbox, relay and consumer runner against a real NATS server."""

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from sqlmodel import Field, Session, SQLModel, col, select

from shared.db import create_tables, make_engine
from shared.events.bus import Bus
from shared.events.consumer import Consumer, ConsumerRunner, ProcessedEvent
from shared.events.contracts import FollowCreated, UserRegistered
from shared.events.envelope import CloudEvent, dead_letter_subject
from shared.events.outbox import SENT_ROWS_KEPT_FOR, OutboxMessage, OutboxRelay, record_event
from shared.ids import new_id, utcnow


class SeenUser(SQLModel, table=True):
    __tablename__ = "test_seen_user"
    user_id: UUID = Field(primary_key=True)
    handle: str
    times: int = 1


def remember_user(session: Session, _envelope: CloudEvent, data: UserRegistered) -> None:
    seen = session.get(SeenUser, data.user_id)
    if seen is None:
        session.add(SeenUser(user_id=data.user_id, handle=data.handle))
    else:
        seen.times += 1


FAILED_ATTEMPTS: list[UUID] = []


def always_fails(_session: Session, envelope: CloudEvent, _data: FollowCreated) -> None:
    FAILED_ATTEMPTS.append(envelope.id)
    raise RuntimeError("boom")


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def registered(handle: str) -> UserRegistered:
    return UserRegistered(user_id=new_id(), handle=handle, display_name=handle.title())


@pytest.mark.asyncio
async def test_committed_events_reach_consumer_once_even_when_redelivered(
    tmp_path: Path, nats_url: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent, SeenUser])
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    relay = OutboxRelay(engine, bus)
    consumer = Consumer("test-users", {UserRegistered: remember_user})
    runner = ConsumerRunner(engine, bus, consumer)
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(runner.run())]
    try:
        with Session(engine) as session:
            for handle in ("ada", "grace", "linus"):
                record_event(session, registered(handle), source="/test")
            session.commit()
        with Session(engine) as session:
            record_event(session, registered("rolled-back"), source="/test")
            session.rollback()

        def all_seen() -> bool:
            with Session(engine) as session:
                return len(session.exec(select(SeenUser)).all()) == 3

        await wait_until(all_seen)
        # A re-publish of the same envelope (e.g. after a relay crash) changes nothing.
        with Session(engine) as session:
            row = session.exec(select(OutboxMessage)).first()
            assert row is not None and row.sent_at is not None
            payload = row.payload.encode()
        await bus.js.publish("events.public.user.registered.v1", payload)
        await asyncio.sleep(0.5)
        with Session(engine) as session:
            users = session.exec(select(SeenUser)).all()
            assert sorted(u.handle for u in users) == ["ada", "grace", "linus"]
            assert all(u.times == 1 for u in users)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()


@pytest.mark.asyncio
async def test_failing_handler_parks_message_on_dead_letter_after_bounded_retries(
    tmp_path: Path, nats_url: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    consumer = Consumer("test-failing", {FollowCreated: always_fails}, max_deliveries=3)
    runner = ConsumerRunner(engine, bus, consumer)
    parked = await bus.js.subscribe(dead_letter_subject("test-failing"), durable="dlq-reader")
    task = asyncio.create_task(runner.run())
    try:
        follow = FollowCreated(follower_id=new_id(), target_type="tag", target="pkm")
        with Session(engine) as session:
            record_event(session, follow, source="/test")
            session.commit()
        await OutboxRelay(engine, bus).publish_pending()
        await bus.js.publish("events.public.follow.created.v1", b"not json at all")
        first = await parked.next_msg(timeout=15)
        second = await parked.next_msg(timeout=15)
        by_subject = {m.headers["Knowflow-Original-Subject"]: m for m in (first, second)}  # type: ignore[index]
        failing = by_subject["events.restricted.follow.created.v1"]
        assert "RuntimeError: boom" in failing.headers["Knowflow-Error"]  # type: ignore[index]
        assert len(FAILED_ATTEMPTS) == 3  # bounded: exactly max_deliveries attempts
        poison = by_subject["events.public.follow.created.v1"]
        assert "Invalid JSON" in poison.headers["Knowflow-Error"]  # type: ignore[index]
        assert poison.data == b"not json at all"

        # Parking publishes first and acks second: nothing stays pending afterwards.
        async def settled() -> bool:
            info = await bus.js.consumer_info("KNOWFLOW", "test-failing")
            return info.num_ack_pending == 0 and info.num_pending == 0

        for _ in range(100):
            if await settled():
                break
            await asyncio.sleep(0.05)
        assert await settled()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


@pytest.mark.asyncio
async def test_relay_keeps_unacknowledged_rows_and_everything_after_them(
    tmp_path: Path, nats_url: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    try:
        with Session(engine) as session:
            record_event(session, registered("first"), source="/test")
            session.commit()
        with Session(engine) as session:
            # No stream captures this subject, so JetStream never acknowledges it.
            stray = record_event(session, registered("stray"), source="/test")
            stray.subject = "nowhere.at.all"
            session.commit()
        with Session(engine) as session:
            record_event(session, registered("after"), source="/test")
            session.commit()
        relay = OutboxRelay(engine, bus, ack_timeout_seconds=2.0)
        assert await relay.publish_pending() == 1
        with Session(engine) as session:
            unsent = session.exec(
                select(OutboxMessage).where(col(OutboxMessage.sent_at).is_(None))
            ).all()
        assert sorted(json.loads(row.payload)["data"]["handle"] for row in unsent) == [
            "after",
            "stray",
        ]
    finally:
        await bus.close()


@pytest.mark.asyncio
async def test_relay_marks_what_it_published_sent_and_prunes_rows_sent_over_a_day_ago(
    tmp_path: Path, nats_url: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage])
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    try:
        with Session(engine) as session:
            old = record_event(session, registered("old"), source="/test")
            old.sent_at = utcnow() - SENT_ROWS_KEPT_FOR - timedelta(minutes=1)
            recent = record_event(session, registered("recent"), source="/test")
            recent.sent_at = utcnow() - SENT_ROWS_KEPT_FOR + timedelta(minutes=5)
            new = record_event(session, registered("new"), source="/test")
            session.commit()
            recent_id, new_id_ = recent.id, new.id
        relay = OutboxRelay(engine, bus)
        assert await relay.publish_pending() == 1
        with Session(engine) as session:
            rows = {row.id: row for row in session.exec(select(OutboxMessage))}
        assert set(rows) == {recent_id, new_id_}
        assert rows[new_id_].sent_at is not None
        assert await relay.publish_pending() == 0
    finally:
        await bus.close()


@pytest.mark.asyncio
async def test_a_stopped_consumer_runner_leaves_no_subscription_for_the_bus_to_drain(
    tmp_path: Path, nats_url: str
) -> None:
    """Closing the bus drains every subscription still open, and waits until its queue is
    accounted for. nats-py takes some messages off a pull subscription's queue without
    marking them done (stale 408s of expired pulls, a message a cancel lands on), so a pull
    subscription left open made every service's shutdown wait out the 5 s drain timeout.
    """
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent, SeenUser])
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    with Session(engine) as session:
        record_event(session, registered("ada"), source="/test")
        session.commit()
    await OutboxRelay(engine, bus).publish_pending()
    # nats-py keeps no public list of a connection's subscriptions.
    subscriptions_before = set(bus.client._subs)
    runner = ConsumerRunner(engine, bus, Consumer("test-users", {UserRegistered: remember_user}))
    task = asyncio.create_task(runner.run())
    try:

        def seen() -> bool:
            with Session(engine) as session:
                return session.exec(select(SeenUser)).first() is not None

        await wait_until(seen)
        assert len(bus.client._subs) == len(subscriptions_before) + 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert set(bus.client._subs) == subscriptions_before
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()
