"""A dependency outage pauses a consumer and loses nothing; only poison is parked."""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Field, Session, SQLModel, select, text

from shared.db import create_tables, make_engine
from shared.events.bus import Bus
from shared.events.consumer import Consumer, ConsumerRunner, PoisonMessage, ProcessedEvent
from shared.events.contracts import UserRegistered
from shared.events.envelope import CloudEvent, subject_for, wrap
from shared.events.failures import DependencyUnavailable, is_transient
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.testing.backends import fresh_database, postgres_url
from shared.testing.tcp_proxy import tcp_proxy

# Longer than the old retry budget (5 deliveries, 0.4 … 3.2 s apart: about 6 s).
OUTAGE_SECONDS = 12.0


class OutageUser(SQLModel, table=True):
    __tablename__ = "test_outage_user"
    user_id: UUID = Field(primary_key=True)
    handle: str


def remember(session: Session, _envelope: CloudEvent, data: UserRegistered) -> None:
    if data.handle.startswith("bad"):
        raise ValueError(f"refused {data.handle}")
    session.add(OutageUser(user_id=data.user_id, handle=data.handle))


async def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def parked_count(bus: Bus) -> int:
    try:
        info = await bus.js.stream_info(bus.dead_letter_stream)
    except NotFoundError:
        return 0
    return int(info.state.messages)


@pytest.mark.asyncio
async def test_a_locked_database_pauses_the_consumer_loses_nothing_and_it_resumes_alone(
    tmp_path: Path, nats_url: str
) -> None:
    path = tmp_path / "svc.db"
    engine = make_engine(f"sqlite:///{path}")
    create_tables(engine, [OutboxMessage, ProcessedEvent, OutageUser])

    @event.listens_for(engine, "connect")
    def _fail_fast(dbapi_connection: Any, _record: Any) -> None:
        # A short busy timeout: a locked database fails the handler at once.
        dbapi_connection.execute("PRAGMA busy_timeout=100")

    engine.dispose()
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    consumer = Consumer("test-outage", {UserRegistered: remember}, max_deliveries=3)
    runner = ConsumerRunner(engine, bus, consumer)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    handles = [f"user{i}" for i in range(5)]
    for handle in [*handles, "bad-bob"]:
        data = UserRegistered(user_id=new_id(), handle=handle, display_name=handle)
        envelope = wrap(data, source="/t")
        await bus.js.publish(
            subject_for(envelope.type, envelope.audience), envelope.model_dump_json().encode()
        )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
        assert await parked_count(bus) == 0  # an unreachable database is not poison
        assert runner.paused
        locker.execute("ROLLBACK")
        locker.close()

        def all_applied() -> bool:
            with Session(engine) as session:
                return len(session.exec(select(OutageUser)).all()) == len(handles)

        await wait_until(all_applied, timeout=40)
        await wait_until(lambda: not runner.paused)
        # The message the handler rejects is still parked, after its bounded deliveries.
        for _ in range(200):
            if await parked_count(bus) == 1:
                break
            await asyncio.sleep(0.1)
        assert await parked_count(bus) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


def test_dependency_failures_are_transient_and_rejected_data_is_not(tmp_path: Path) -> None:
    refused = OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused"))
    wrapped = RuntimeError("batch failed")
    wrapped.__cause__ = TimeoutError("read timed out")
    transient: list[BaseException] = [
        refused,
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        DependencyUnavailable("bulk item answered 429"),
        wrapped,
    ]
    for failure in transient:
        assert is_transient(failure), failure
    integrity = IntegrityError("INSERT", {}, ValueError("UNIQUE constraint failed"))
    with make_engine(f"sqlite:///{tmp_path / 'bug.db'}").connect() as connection:
        try:
            connection.execute(text("SELECT * FROM no_such_table"))
        except OperationalError as exc:
            missing_table = exc  # a bug in the handler, not an outage
    rejected: list[BaseException] = [
        PoisonMessage("bad"),
        ValueError("no"),
        integrity,
        KeyError(),
        missing_table,
    ]
    for failure in rejected:
        assert not is_transient(failure), failure


def test_opensearch_unavailable_and_overload_answers_are_transient_a_bad_request_is_not() -> None:
    from opensearchpy import ConnectionError as OpenSearchConnectionError
    from opensearchpy import ConnectionTimeout, RequestError, TransportError

    assert is_transient(OpenSearchConnectionError("N/A", "refused", OSError()))
    assert is_transient(ConnectionTimeout("TIMEOUT", "timed out", TimeoutError()))
    assert is_transient(TransportError(429, "es_rejected_execution_exception", {}))
    assert is_transient(TransportError(503, "unavailable_shards_exception", {}))
    assert not is_transient(RequestError(400, "mapper_parsing_exception", {}))


@pytest.mark.asyncio
async def test_an_unreachable_postgresql_pauses_the_consumer_and_loses_nothing(
    tmp_path: Path, nats_url: str
) -> None:
    base = postgres_url()
    if base is None:
        pytest.skip("set KNOWFLOW_TEST_POSTGRES_URL to run against PostgreSQL")
    with fresh_database(tmp_path, "outage") as url:
        direct = make_url(url)
        with tcp_proxy(direct.host or "127.0.0.1", direct.port or 5432) as proxy:
            engine = make_engine(
                direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            )
            create_tables(engine, [OutboxMessage, ProcessedEvent, OutageUser])
            bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
            runner = ConsumerRunner(engine, bus, Consumer("test-pg", {UserRegistered: remember}))
            task = asyncio.create_task(runner.run())
            try:
                proxy.set_mode("refuse")  # connections reset, as when the server is down
                handles = [f"pg{i}" for i in range(5)]
                for handle in handles:
                    data = UserRegistered(user_id=new_id(), handle=handle, display_name=handle)
                    envelope = wrap(data, source="/t")
                    await bus.js.publish(
                        subject_for(envelope.type, envelope.audience),
                        envelope.model_dump_json().encode(),
                    )
                await asyncio.sleep(OUTAGE_SECONDS)
                assert await parked_count(bus) == 0
                assert runner.paused
                proxy.set_mode("pass")

                def all_applied() -> bool:
                    with Session(engine) as session:
                        return len(session.exec(select(OutageUser)).all()) == len(handles)

                await wait_until(all_applied, timeout=40)
                await wait_until(lambda: not runner.paused)
                assert await parked_count(bus) == 0
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await bus.close()
                engine.dispose()
