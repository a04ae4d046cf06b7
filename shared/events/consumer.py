"""Durable JetStream pull consumers with idempotent handlers and a dead-letter subject.

A handler is a plain function `(session, envelope, data) -> None` registered for one
event type. The runner gives each message its own transaction, records the event id
as processed in that same transaction (so a redelivery is a no-op), commits, and only
then acks. A handler that keeps failing is retried with back-off up to
`max_deliveries` times, then the message is parked on `deadletter.<consumer>` with
the error, and acked.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from shared.events.bus import Bus
from shared.events.contracts import EVENT_TYPES
from shared.events.envelope import CloudEvent, EventData, dead_letter_subject, filter_subject_for
from shared.ids import utcnow
from shared.observability import bind_traceparent

log = logging.getLogger(__name__)

Handler = Callable[[Session, CloudEvent, Any], None]
Outcome = Literal["processed", "duplicate", "ignored", "retry", "parked"]


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    processed_at: datetime


class PoisonMessage(Exception):
    """A message that can never be processed (not a CloudEvent, unknown shape)."""


@dataclass
class Consumer:
    """A durable consumer: its name and one handler per event type it cares about."""

    durable: str
    handlers: Mapping[type[EventData], Handler]
    max_deliveries: int = 5
    ack_wait_seconds: float = 30.0
    batch_size: int = 100
    on_outcome: Callable[[Outcome], None] | None = field(default=None, repr=False)

    @property
    def filter_subjects(self) -> list[str]:
        return sorted(filter_subject_for(model.event_type) for model in self.handlers)

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
            for message in messages:
                await self.settle(message)

    async def settle(self, message: Msg) -> Outcome:
        outcome: Outcome
        try:
            outcome = await asyncio.to_thread(handle_one, self.engine, self.consumer, message.data)
            await message.ack()
        except PoisonMessage as exc:
            outcome = await self.park(message, str(exc))
        except Exception as exc:
            delivered = message.metadata.num_delivered or 1
            if delivered >= self.consumer.max_deliveries:
                outcome = await self.park(message, f"{type(exc).__name__}: {exc}")
            else:
                log.warning(
                    "handler failed (delivery %d of %s): %s", delivered, message.subject, exc
                )
                await message.nak(delay=min(0.2 * 2**delivered, 10.0))
                outcome = "retry"
        if self.consumer.on_outcome:
            self.consumer.on_outcome(outcome)
        return outcome

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
