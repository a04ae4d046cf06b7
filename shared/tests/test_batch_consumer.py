"""Batch consumption: one call per fetch, per-item results, retries and dead letters."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlmodel import Session, select

from shared.db import create_tables, make_engine
from shared.events.bus import Bus
from shared.events.consumer import (
    BatchHandler,
    BatchItem,
    Consumer,
    ConsumerRunner,
    ProcessedEvent,
)
from shared.events.contracts import UserRegistered
from shared.events.envelope import dead_letter_subject, subject_for, wrap
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
