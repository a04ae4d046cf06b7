"""Durable JetStream pull consumers with idempotent handlers and a dead-letter subject.

A handler is a plain function `(session, envelope, data) -> None` registered for one
event type. The runner gives each message its own transaction, records the event id
as processed in that same transaction (so a redelivery is a no-op), commits, and only
then acks. A handler that keeps failing is retried with back-off up to
`max_deliveries` times, then the message is parked on `deadletter.<consumer>` with
the error, and acked.

A consumer may also have a `BatchHandler` for some event types (e.g. one bulk request
to a search cluster per fetch). The runner gives it the decoded, not-yet-processed
events of one fetch, in stream order, and it reports one result per event: success
records the event as processed and acks it; a failure is retried and parked exactly
like a failing per-message handler. A batch handler writes outside the runner's
transaction, so it must be idempotent on its own (e.g. external versions): an event
applied but not yet recorded is applied again after a crash.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from shared.events.bus import Bus
from shared.events.contracts import EVENT_TYPES
from shared.events.envelope import CloudEvent, EventData, dead_letter_subject, filter_subject_for
from shared.ids import utcnow
from shared.observability import bind_traceparent

log = logging.getLogger(__name__)

Handler = Callable[[Session, CloudEvent, Any], None]
BatchItem = tuple[CloudEvent, EventData]
Outcome = Literal["processed", "duplicate", "ignored", "retry", "parked"]


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    processed_at: datetime


class PoisonMessage(Exception):
    """A message that can never be processed (not a CloudEvent, unknown shape)."""


@dataclass(frozen=True)
class BatchHandler:
    """Applies many events in one call; `handle` returns one result per item, None = done.

    `handle` runs in a worker thread and must not raise for one bad item: it returns
    that item's exception instead. If it raises, every item of the call is retried.
    """

    event_types: tuple[type[EventData], ...]
    handle: Callable[[Sequence[BatchItem]], Sequence[BaseException | None]]


@dataclass
class Consumer:
    """A durable consumer: its name and one handler per event type it cares about."""

    durable: str
    handlers: Mapping[type[EventData], Handler]
    max_deliveries: int = 5
    ack_wait_seconds: float = 30.0
    batch_size: int = 100
    on_outcome: Callable[[Outcome], None] | None = field(default=None, repr=False)
    batch_handler: BatchHandler | None = None

    @property
    def event_types(self) -> set[type[EventData]]:
        batched = self.batch_handler.event_types if self.batch_handler else ()
        return {*self.handlers, *batched}

    @property
    def filter_subjects(self) -> list[str]:
        return sorted({filter_subject_for(model.event_type) for model in self.event_types})

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=self.filter_subjects,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            # One more than ours, so the server never drops a message we have not parked.
            max_deliver=self.max_deliveries + 1,
            max_ack_pending=1000,
        )


def decode(payload: bytes) -> tuple[CloudEvent, EventData]:
    """Parse an envelope and its data; raises PoisonMessage if it cannot be understood."""
    try:
        envelope = CloudEvent.model_validate_json(payload)
        model = EVENT_TYPES[envelope.type]
        return envelope, model.model_validate(envelope.data)
    except (ValidationError, KeyError, ValueError) as exc:
        raise PoisonMessage(f"{type(exc).__name__}: {exc}") from exc


def handle_one(engine: Engine, consumer: Consumer, payload: bytes) -> Outcome:
    """Run the handler for one message in its own transaction (blocking: call in a thread)."""
    envelope, data = decode(payload)
    handler = consumer.handlers.get(type(data))
    if handler is None:
        return "ignored"
    with Session(engine, expire_on_commit=False) as session:
        if session.get(ProcessedEvent, (consumer.durable, str(envelope.id))) is not None:
            return "duplicate"
        with bind_traceparent(envelope.traceparent):
            handler(session, envelope, data)
        session.add(
            ProcessedEvent(
                consumer=consumer.durable, event_id=str(envelope.id), processed_at=utcnow()
            )
        )
        try:
            session.commit()
        except IntegrityError:
            # A replica of this consumer processed the same event concurrently.
            session.rollback()
            return "duplicate"
    return "processed"


def unprocessed(engine: Engine, consumer: Consumer, event_ids: Sequence[str]) -> set[str]:
    """The ids among `event_ids` this consumer has not recorded as processed."""
    if not event_ids:
        return set()
    with Session(engine) as session:
        query = select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == consumer.durable,
            col(ProcessedEvent.event_id).in_(event_ids),
        )
        done = set(session.exec(query).all())
    return set(event_ids) - done


def record_processed(engine: Engine, consumer: Consumer, event_ids: Sequence[str]) -> None:
    """Record events applied by a batch handler; ids already recorded are skipped."""
    if not event_ids:
        return
    with Session(engine) as session:
        # A replica may have recorded some meanwhile: insert only the missing ones.
        missing = unprocessed(engine, consumer, event_ids)
        now = utcnow()
        session.add_all(
            ProcessedEvent(consumer=consumer.durable, event_id=event_id, processed_at=now)
            for event_id in dict.fromkeys(event_ids)
            if event_id in missing
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # raced with a replica: the events are recorded either way


class ConsumerRunner:
    """Pulls batches for one consumer and settles every message it receives."""

    def __init__(self, engine: Engine, bus: Bus, consumer: Consumer) -> None:
        self.engine = engine
        self.bus = bus
        self.consumer = consumer

    async def run(self) -> None:
        await self.bus.js.add_consumer(self.bus.stream, self.consumer.config())
        subscription = await self.bus.js.pull_subscribe_bind(
            self.consumer.durable, stream=self.bus.stream
        )
        while True:
            try:
                messages = await subscription.fetch(self.consumer.batch_size, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fetch failed for %s", self.consumer.durable)
                await asyncio.sleep(1.0)
                continue
            if self.consumer.batch_handler is None:
                for message in messages:
                    await self.settle(message)
            else:
                await self.settle_batch(messages)

    async def settle(self, message: Msg) -> Outcome:
        outcome: Outcome
        try:
            outcome = await asyncio.to_thread(handle_one, self.engine, self.consumer, message.data)
            await message.ack()
        except PoisonMessage as exc:
            outcome = await self.park(message, str(exc))
        except Exception as exc:
            outcome = await self.retry_or_park(message, exc)
        self._count(outcome)
        return outcome

    async def settle_batch(self, messages: Sequence[Msg]) -> None:
        """Settle one fetch: batchable events through the batch handler, the rest one by one."""
        batch = self.consumer.batch_handler
        assert batch is not None
        batched: list[tuple[Msg, BatchItem]] = []
        for message in messages:
            try:
                envelope, data = decode(message.data)
            except PoisonMessage as exc:
                self._count(await self.park(message, str(exc)))
                continue
            if isinstance(data, batch.event_types):
                batched.append((message, (envelope, data)))
            else:
                await self.settle(message)
        if not batched:
            return
        try:
            pending = await asyncio.to_thread(
                unprocessed, self.engine, self.consumer, [str(e.id) for _, (e, _) in batched]
            )
            todo: list[tuple[Msg, BatchItem]] = []
            for message, item in batched:
                # A redelivered copy in the same fetch is applied once, with the first.
                if str(item[0].id) in pending:
                    pending.discard(str(item[0].id))
                    todo.append((message, item))
            results = (
                list(await asyncio.to_thread(batch.handle, [item for _, item in todo]))
                if todo
                else []
            )
            if len(results) != len(todo):
                raise RuntimeError(f"batch handler returned {len(results)} results for {len(todo)}")
            done = [
                str(item[0].id)
                for (_, item), result in zip(todo, results, strict=True)
                if result is None
            ]
            await asyncio.to_thread(record_processed, self.engine, self.consumer, done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("batch of %d failed for %s", len(batched), self.consumer.durable)
            for message, _ in batched:
                self._count(await self.retry_or_park(message, exc))
            return
        applied = {id(message): result for (message, _), result in zip(todo, results, strict=True)}
        for message, _ in batched:
            error = applied.get(id(message))
            if error is None:
                await message.ack()
                self._count("processed" if id(message) in applied else "duplicate")
            else:
                self._count(await self.retry_or_park(message, error))

    async def retry_or_park(self, message: Msg, exc: BaseException) -> Outcome:
        """Nak with back-off, or park once the message has used its deliveries."""
        delivered = message.metadata.num_delivered or 1
        if delivered >= self.consumer.max_deliveries:
            return await self.park(message, f"{type(exc).__name__}: {exc}")
        log.warning("handler failed (delivery %d of %s): %s", delivered, message.subject, exc)
        await message.nak(delay=min(0.2 * 2**delivered, 10.0))
        return "retry"

    def _count(self, outcome: Outcome) -> None:
        if self.consumer.on_outcome:
            self.consumer.on_outcome(outcome)

    async def park(self, message: Msg, error: str) -> Outcome:
        """Put a message that cannot be processed on the dead-letter subject, then ack it."""
        log.error("parking message from %s: %s", message.subject, error)
        headers: dict[str, Any] = {
            "Knowflow-Error": error[:1000].replace("\n", " "),
            "Knowflow-Original-Subject": message.subject,
            "Knowflow-Consumer": self.consumer.durable,
        }
        await self.bus.js.publish(
            dead_letter_subject(self.consumer.durable), message.data, headers=headers
        )
        await message.ack()
        return "parked"
