"""The stream's reading rules on a real database: late commits, permission, bounded memory.

The hub is driven by hand here (`hub.wake`); the NATS path is covered end to end in
tests/gateway/test_live_streams.py.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID

import orjson
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.notifications.live import (
    MAX_REMEMBERED,
    LiveHub,
    StreamCursor,
    notification_stream,
    uuid7_floor,
)
from services.notifications.main import SPEC
from services.notifications.models import Notification, NotifiedMembership
from shared.db import make_engine
from shared.ids import new_id, utcnow
from shared.testing.backends import fresh_database


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(tmp_path, "notifications") as url:
        engine = make_engine(url)
        SPEC.prepare_database(engine)
        yield engine
        engine.dispose()


def row(
    user_id: UUID, notification_id: UUID | None = None, group_id: UUID | None = None
) -> Notification:
    return Notification(
        id=notification_id or new_id(),
        user_id=user_id,
        kind="mention",
        dedupe_key=f"mention:{new_id()}",
        group_key="mention",
        title="t",
        reason="r",
        url="/x",
        group_id=group_id,
    )


def commit(engine: Engine, *rows: object) -> None:
    with Session(engine) as session:
        for item in rows:
            session.merge(item)
        session.commit()


async def next_event(stream: AsyncIterator[bytes], kind: str, timeout: float = 5.0) -> bytes:
    """The next event of `kind` (comments and other kinds skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            chunk = await anext(stream)
            if f"event: {kind}\n".encode() in chunk:
                return chunk


def event_id(chunk: bytes) -> UUID:
    return UUID(chunk.split(b"\n", 1)[0].removeprefix(b"id: ").decode())


async def nothing_more(stream: AsyncIterator[bytes], kind: str, wait: float = 0.5) -> bool:
    try:
        await next_event(stream, kind, timeout=wait)
    except TimeoutError:
        return True
    return False


def test_a_row_with_an_earlier_id_that_commits_later_is_still_sent_once(engine: Engine) -> None:
    async def scenario() -> None:
        hub = LiveHub()
        ben = new_id()
        stream = notification_stream(
            hub=hub, engine=engine, user_id=ben, last_event_id=None, heartbeat_seconds=30
        )
        await next_event(stream, "unread")
        earlier, later = new_id(), new_id()  # two transactions took their ids in this order
        commit(engine, row(ben, later))  # ... but the later one commits first
        hub.wake(ben)
        assert event_id(await next_event(stream, "notification")) == later
        commit(engine, row(ben, earlier))
        hub.wake(ben)
        assert event_id(await next_event(stream, "notification")) == earlier
        hub.wake(ben)  # a duplicate wake-up re-reads, and sends nothing twice
        assert await nothing_more(stream, "notification")
        await stream.aclose()
        assert hub.open_streams == 0

    asyncio.run(scenario())


def test_each_item_is_checked_against_the_membership_when_it_is_sent(engine: Engine) -> None:
    async def scenario() -> None:
        hub = LiveHub()
        ben, group = new_id(), new_id()
        commit(engine, NotifiedMembership(group_id=group, user_id=ben, active=False))
        stream = notification_stream(
            hub=hub, engine=engine, user_id=ben, last_event_id=None, heartbeat_seconds=30
        )
        unread = await next_event(stream, "unread")
        assert orjson.loads(unread.split(b"data: ")[1]) == {"unread": 0}
        hidden, shown = row(ben, group_id=group), row(ben)
        commit(engine, hidden, shown)
        hub.wake(ben)
        assert event_id(await next_event(stream, "notification")) == shown.id
        unread = await next_event(stream, "unread")
        assert orjson.loads(unread.split(b"data: ")[1]) == {"unread": 1}  # not 2
        assert await nothing_more(stream, "notification")
        await stream.aclose()

    asyncio.run(scenario())


def test_a_heartbeat_rereads_so_a_lost_wake_up_costs_one_heartbeat(engine: Engine) -> None:
    async def scenario() -> None:
        hub = LiveHub()
        ben = new_id()
        stream = notification_stream(
            hub=hub, engine=engine, user_id=ben, last_event_id=None, heartbeat_seconds=0.2
        )
        await next_event(stream, "unread")
        missed = row(ben)
        commit(engine, missed)  # and no wake-up
        assert event_id(await next_event(stream, "notification", timeout=3)) == missed.id
        await stream.aclose()

    asyncio.run(scenario())


def test_closing_the_hub_ends_every_open_stream(engine: Engine) -> None:
    async def scenario() -> None:
        hub = LiveHub()
        streams = [
            notification_stream(
                hub=hub, engine=engine, user_id=new_id(), last_event_id=None, heartbeat_seconds=30
            )
            for _ in range(3)
        ]
        for stream in streams:
            await next_event(stream, "unread")
        hub.close_streams()
        for stream in streams:
            with pytest.raises(StopAsyncIteration):
                async with asyncio.timeout(5):
                    while True:
                        await anext(stream)
        assert hub.open_streams == 0

    asyncio.run(scenario())


def test_a_stream_remembers_a_bounded_number_of_ids_and_stops_looking_back_past_them() -> None:
    cursor = StreamCursor(start=uuid7_floor(utcnow()))
    ids = [new_id() for _ in range(MAX_REMEMBERED + 5)]
    for notification_id in ids:
        cursor.remember(notification_id)
    assert len(cursor.sent) == MAX_REMEMBERED
    assert cursor.start == ids[4]  # ids up to the last forgotten one are never re-read
    assert cursor.lower_bound(utcnow()) >= ids[4]
