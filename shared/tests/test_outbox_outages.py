"""The outbox relay across a NATS restart, and the pruning of processed-event records."""

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from subprocess import Popen

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from shared.db import create_tables, make_engine
from shared.events.bus import Bus
from shared.events.consumer import (
    PROCESSED_EVENTS_KEPT_FOR,
    Consumer,
    ProcessedEvent,
    prune_processed,
)
from shared.events.contracts import UserRegistered
from shared.events.outbox import OutboxMessage, OutboxRelay, outbox_backlog, record_event
from shared.ids import new_id, utcnow
from shared.natsserver import free_port, start_nats_server


class NatsServer:
    """A nats-server this test may stop and start again on the same port and store."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_nats_server(self.workdir, port=self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def record_users(engine: Engine, count: int) -> None:
    with Session(engine) as session:
        for i in range(count):
            data = UserRegistered(user_id=new_id(), handle=f"u{i}", display_name=f"U{i}")
            record_event(session, data, source="/test")
        session.commit()


@pytest.mark.asyncio
async def test_while_nats_is_down_the_relay_fails_fast_then_publishes_once_it_is_back(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    bus = await Bus.connect(nats_server.url, stream="KNOWFLOW", name="test")
    relay = OutboxRelay(engine, bus, ack_timeout_seconds=10.0)
    try:
        nats_server.stop()
        for _ in range(100):
            if not bus.is_connected:
                break
            await asyncio.sleep(0.05)
        record_users(engine, 5)
        # Not the 10 s acknowledgement timeout: nothing can be acknowledged now.
        assert await asyncio.wait_for(relay.publish_pending(), timeout=2.0) == 0
        assert outbox_backlog(engine) == 5
        task = asyncio.create_task(relay.run())
        try:
            await asyncio.sleep(1.0)
            nats_server.start()
            for _ in range(300):
                if outbox_backlog(engine) == 0:
                    break
                await asyncio.sleep(0.05)
            assert outbox_backlog(engine) == 0
            info = await bus.js.stream_info("KNOWFLOW")
            assert info.state.messages == 5
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await bus.close()


@pytest.mark.asyncio
async def test_a_nats_outage_is_logged_once_not_with_a_traceback_per_reconnect_attempt(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    bus = await Bus.connect(nats_server.url, stream="KNOWFLOW", name="test")
    task = asyncio.create_task(OutboxRelay(engine, bus, idle_poll_seconds=0.1).run())
    try:
        await asyncio.sleep(0.3)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            nats_server.stop()
            record_users(engine, 3)
            await asyncio.sleep(4.0)  # eight reconnect attempts at 0.5 s
            nats_server.start()
            for _ in range(200):
                if outbox_backlog(engine) == 0:
                    break
                await asyncio.sleep(0.05)
        assert outbox_backlog(engine) == 0
        noisy = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert [record for record in noisy if record.exc_info] == []
        assert len(noisy) <= 3, [record.getMessage() for record in noisy]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


def test_processed_events_older_than_the_stream_can_redeliver_are_pruned(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    consumer = Consumer("test-prune", {})
    now = utcnow()
    old = now - PROCESSED_EVENTS_KEPT_FOR - timedelta(minutes=1)
    recent = now - PROCESSED_EVENTS_KEPT_FOR + timedelta(minutes=1)
    with Session(engine) as session:
        for i in range(25):
            session.add(ProcessedEvent(consumer="test-prune", event_id=f"old{i}", processed_at=old))
        session.add(ProcessedEvent(consumer="test-prune", event_id="recent", processed_at=recent))
        session.add(ProcessedEvent(consumer="another", event_id="old-other", processed_at=old))
        session.commit()

    removed = prune_processed(engine, consumer, now - PROCESSED_EVENTS_KEPT_FOR, batch=10)

    assert removed == 25
    with Session(engine) as session:
        left = session.exec(select(ProcessedEvent.event_id).order_by(col(ProcessedEvent.event_id)))
        assert list(left) == ["old-other", "recent"]
