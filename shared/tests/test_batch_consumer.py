"""Batch consumption: one call (or one transaction) per fetch, retries and dead letters."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError
from sqlalchemy import event, text
from sqlmodel import Session, select

from shared.db import create_tables, make_engine
from shared.events.bus import Bus
from shared.events.consumer import (
    BatchHandler,
    BatchItem,
    Consumer,
    ConsumerRunner,
    Handler,
    ProcessedEvent,
    projection_consumer,
)
from shared.events.contracts import UserRegistered
from shared.events.envelope import (
    CloudEvent,
    EventData,
    dead_letter_subject,
    subject_for,
    wrap,
)
from shared.events.outbox import OutboxMessage
from shared.ids import new_id


class Recorder:
    """A batch handler that refuses handles starting with 'bad'."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.applied: list[str] = []

    def handle(self, items: Sequence[BatchItem]) -> list[BaseException | None]:
        handles = [data.handle for _, data in items]  # type: ignore[attr-defined]
        self.calls.append(handles)
        results: list[BaseException | None] = []
        for handle in handles:
            if handle.startswith("bad"):
                results.append(ValueError(f"refused {handle}"))
            else:
                self.applied.append(handle)
                results.append(None)
        return results


@pytest.mark.asyncio
async def test_a_batch_handler_settles_each_item_and_parks_only_the_failing_one(
    tmp_path: Path, nats_url: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    recorder = Recorder()
    consumer = Consumer(
        "test-batch",
        {},
        max_deliveries=3,
        batch_handler=BatchHandler(event_types=(UserRegistered,), handle=recorder.handle),
    )
    parked = await bus.js.subscribe(dead_letter_subject("test-batch"), durable="dlq-reader")
    envelopes = [
        wrap(UserRegistered(user_id=new_id(), handle=handle, display_name=handle), source="/t")
        for handle in ("ada", "bad-bob", "cy")
    ]
    for envelope in [*envelopes, envelopes[0]]:  # the last is a redelivered duplicate
        await bus.js.publish(
            subject_for(envelope.type, envelope.audience), envelope.model_dump_json().encode()
        )
    task = asyncio.create_task(ConsumerRunner(engine, bus, consumer).run())
    try:
        dead = await parked.next_msg(timeout=20)
        assert "refused bad-bob" in dead.headers["Knowflow-Error"]  # type: ignore[index]
        assert recorder.calls[0] == ["ada", "bad-bob", "cy"]  # one call for the whole fetch
        assert sorted(recorder.applied) == ["ada", "cy"]  # the duplicate was skipped
        assert sum(call.count("bad-bob") for call in recorder.calls) == 3
        with Session(engine) as session:
            recorded = set(session.exec(select(ProcessedEvent.event_id)).all())
        assert recorded == {str(envelopes[0].id), str(envelopes[2].id)}
        info = await bus.js.consumer_info("KNOWFLOW", "test-batch")
        assert info.num_pending == 0
    finally:
        await parked.unsubscribe()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


class Ledger:
    """Handlers that write each handle to a table, refusing handles starting with 'bad'."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.one_by_one: list[str] = []
        self.commits = 0

    @staticmethod
    def _write(session: Session, handle: str) -> None:
        if handle.startswith("bad"):
            raise ValueError(f"refused {handle}")
        session.execute(text("INSERT INTO ledger (handle) VALUES (:handle)"), {"handle": handle})

    def batch(self, session: Session, items: Sequence[BatchItem]) -> None:
        handles = [data.handle for _, data in items]  # type: ignore[attr-defined]
        self.batches.append(handles)
        for handle in handles:
            self._write(session, handle)

    def one(self, session: Session, _envelope: CloudEvent, data: UserRegistered) -> None:
        self.one_by_one.append(data.handle)
        self._write(session, data.handle)


async def _run_ledger(
    tmp_path: Path,
    nats_url: str,
    handles: Sequence[str],
    *,
    duplicate_first: bool,
    projection: bool = False,
) -> tuple[Ledger, set[str], list[str], set[str], list[str]]:
    """Publish one event per handle, run a one-transaction consumer until it settles
    (`projection`: one made by `projection_consumer` from the per-message handler)."""
    engine = make_engine(f"sqlite:///{tmp_path}/svc.db")
    create_tables(engine, [OutboxMessage, ProcessedEvent])
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE ledger (handle TEXT NOT NULL)"))
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test")
    ledger = Ledger()

    @event.listens_for(engine, "commit")
    def _count(_connection: object) -> None:
        ledger.commits += 1

    handlers: dict[type[EventData], Handler] = {UserRegistered: ledger.one}
    consumer = (
        projection_consumer("test-one-transaction", handlers, max_deliveries=3)
        if projection
        else Consumer(
            "test-one-transaction", handlers, max_deliveries=3, in_one_transaction=ledger.batch
        )
    )
    parked = await bus.js.subscribe(
        dead_letter_subject("test-one-transaction"), durable="dlq-reader"
    )
    envelopes = [
        wrap(UserRegistered(user_id=new_id(), handle=handle, display_name=handle), source="/t")
        for handle in handles
    ]
    for envelope in [*envelopes, *envelopes[:1]] if duplicate_first else envelopes:
        await bus.js.publish(
            subject_for(envelope.type, envelope.audience), envelope.model_dump_json().encode()
        )
    task = asyncio.create_task(ConsumerRunner(engine, bus, consumer).run())
    dead: list[str] = []
    try:
        for _ in range(200):
            await asyncio.sleep(0.1)
            try:
                info = await bus.js.consumer_info("KNOWFLOW", "test-one-transaction")
            except NotFoundError:
                continue  # the runner has not created it yet
            if not info.num_pending and not info.num_ack_pending and info.delivered.stream_seq:
                break
        try:
            while True:
                message = await parked.next_msg(timeout=0.5)
                dead.append(message.headers["Knowflow-Error"])  # type: ignore[index]
        except (TimeoutError, NatsTimeoutError):
            pass
        with Session(engine) as session:
            recorded = set(session.exec(select(ProcessedEvent.event_id)).all())
            written = [row[0] for row in session.execute(text("SELECT handle FROM ledger"))]
    finally:
        await parked.unsubscribe()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()
    return ledger, recorded, written, {str(envelope.id) for envelope in envelopes}, dead


@pytest.mark.asyncio
async def test_a_fetch_is_applied_in_one_transaction_and_each_event_once(
    tmp_path: Path, nats_url: str
) -> None:
    ledger, recorded, written, ids, dead = await _run_ledger(
        tmp_path, nats_url, ["ada", "bo", "cy"], duplicate_first=True
    )
    # One call per fetch (a fetch may hold fewer than all three); the copy never handed over.
    assert [handle for batch in ledger.batches for handle in batch] == ["ada", "bo", "cy"]
    assert ledger.one_by_one == []
    assert sorted(written) == ["ada", "bo", "cy"]
    assert recorded == ids
    assert dead == []


@pytest.mark.asyncio
async def test_a_failing_fetch_is_settled_one_at_a_time_and_only_the_bad_event_parked(
    tmp_path: Path, nats_url: str
) -> None:
    ledger, recorded, written, ids, dead = await _run_ledger(
        tmp_path, nats_url, ["ada", "bad-bob", "cy"], duplicate_first=False
    )
    assert any("bad-bob" in batch and len(batch) > 1 for batch in ledger.batches)
    assert sorted(written) == ["ada", "cy"]  # the failed transaction left nothing behind
    assert len(recorded) == 2 and recorded < ids
    assert len(dead) == 1 and "refused bad-bob" in dead[0]


@pytest.mark.asyncio
async def test_a_projection_consumer_applies_a_fetch_through_its_handlers_in_one_commit(
    tmp_path: Path, nats_url: str
) -> None:
    handles = ["ada", "bo", "cy", "di", "ed"]
    ledger, recorded, written, ids, dead = await _run_ledger(
        tmp_path, nats_url, handles, duplicate_first=True, projection=True
    )
    assert ledger.one_by_one == handles  # in stream order, each once, the copy skipped
    assert written == handles
    assert recorded == ids
    assert dead == []
    # Five events (and a copy) published before the runner started: a commit per fetch,
    # not per event (one at a time would be at least five).
    assert 1 <= ledger.commits < len(handles)


@pytest.mark.asyncio
async def test_a_failing_projection_fetch_leaves_nothing_and_is_settled_one_at_a_time(
    tmp_path: Path, nats_url: str
) -> None:
    ledger, recorded, written, ids, dead = await _run_ledger(
        tmp_path, nats_url, ["ada", "bad-bob", "cy"], duplicate_first=False, projection=True
    )
    # The fetch's transaction wrote "ada" before "bad-bob" failed and was rolled back; then
    # each message went alone, so "ada" was handled twice and written once.
    assert ledger.one_by_one[:2] == ["ada", "bad-bob"]
    assert ledger.one_by_one.count("ada") == 2
    assert sorted(written) == ["ada", "cy"]
    assert len(recorded) == 2 and recorded < ids
    assert len(dead) == 1 and "refused bad-bob" in dead[0]
