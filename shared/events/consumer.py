"""Durable JetStream pull consumers with idempotent handlers and a dead-letter subject.

A handler is a plain function `(session, envelope, data) -> None` registered for one
event type. The runner gives each message its own transaction, records the event id
as processed in that same transaction (so a redelivery is a no-op), commits, and only
then acks. A failure is either transient (a dependency is unavailable: see
`shared.events.failures`) or the message's fault. A transient failure pauses the
consumer with the message kept, without spending its deliveries, until the dependency
is back. A message that keeps failing otherwise is retried with back-off up to
`max_deliveries` times, then parked on `deadletter.<consumer>` with the error, and
acked. A parked message is replayed to its consumer alone on
`events.replay.<consumer>.<original subject>` (`knowflow-admin replay-dead-letters`).

A consumer may also have a `BatchHandler` for some event types (e.g. one bulk request
to a search cluster per fetch). The runner gives it the decoded, not-yet-processed
events of one fetch, in stream order, and it reports one result per event: success
records the event as processed and acks it; a failure is retried and parked exactly
like a failing per-message handler (an item failing transiently, e.g. OpenSearch
answering 429, pauses the consumer like any transient failure). A batch handler writes outside the runner's
transaction, so it must be idempotent on its own (e.g. external versions): an event
applied but not yet recorded is applied again after a crash.

A consumer whose handlers write only to its own database may instead apply a whole fetch
in one transaction (`in_one_transaction`, e.g. the embedded search index): the events not
yet processed go to it together, and are recorded as processed in that same transaction,
so each still takes effect once. If that transaction fails for a reason other than an
unavailable dependency, the fetch is settled one message at a time with the per-message
handlers, so a bad event fails (and is parked) alone.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from shared.db import in_list
from shared.events.bus import (
    DUPLICATE_WINDOW_SECONDS,
    STREAM_MAX_AGE_SECONDS,
    Bus,
    OutageLog,
    unsubscribe,
)
from shared.events.contracts import EVENT_TYPES
from shared.events.envelope import (
    CloudEvent,
    EventData,
    dead_letter_subject,
    filter_subject_for,
    replay_filter_for,
)
from shared.events.failures import DependencyUnavailable, is_transient
from shared.ids import utcnow
from shared.metrics import CONSUMER_PAUSED, EVENTS_PARKED
from shared.observability import bind_traceparent

log = logging.getLogger(__name__)

Handler = Callable[[Session, CloudEvent, Any], None]
BatchItem = tuple[CloudEvent, EventData]
TransactionHandler = Callable[[Session, Sequence[BatchItem]], None]
Outcome = Literal["processed", "duplicate", "ignored", "retry", "parked"]

ORIGINAL_SUBJECT_HEADER = "Knowflow-Original-Subject"
CONSUMER_HEADER = "Knowflow-Consumer"

# Back-off while a dependency is unavailable: 0.5 s, doubling, at most 30 s per retry.
PAUSE_FIRST_DELAY_SECONDS = 0.5
PAUSE_MAX_DELAY_SECONDS = 30.0
PAUSE_LOG_INTERVAL_SECONDS = 60.0
MAX_TRACKED_FAILURES = 10_000

# A processed-event record guards against redelivery and re-publish: neither can come
# once the stream has dropped the message (retention) and its id left the duplicate window.
PROCESSED_EVENTS_KEPT_FOR = timedelta(seconds=STREAM_MAX_AGE_SECONDS + DUPLICATE_WINDOW_SECONDS)
PRUNE_INTERVAL_SECONDS = 3600.0
PRUNE_BATCH = 1000
PRUNE_MAX_BATCHES = 20


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
    # Applies a fetch's events that have a handler, in one transaction of the runner's
    # session (the handlers above stay: a failed batch is retried one message at a time).
    in_one_transaction: TransactionHandler | None = None

    @property
    def event_types(self) -> set[type[EventData]]:
        batched = self.batch_handler.event_types if self.batch_handler else ()
        return {*self.handlers, *batched}

    @property
    def filter_subjects(self) -> list[str]:
        subjects = {filter_subject_for(model.event_type) for model in self.event_types}
        return [*sorted(subjects), replay_filter_for(self.durable)]

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=self.filter_subjects,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            # Unlimited: the runner parks poison itself (counting only the message's own
            # failures), and outages must never make the server drop a message.
            max_deliver=-1,
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


def each_in_order(handlers: Mapping[type[EventData], Handler]) -> TransactionHandler:
    """A consumer's own per-message handlers as its `in_one_transaction`: a fetch's events
    go through them in stream order, in one transaction.

    For projections and triggers that write only to the service's database. Under load a
    fetch holds many events, and one commit, one processed-events insert and one thread
    hand-off for all of them cost less than one each (the notifications inbox spent 3 ms
    of CPU per post one at a time). A failing fetch is settled one message at a time, so
    the handlers must not commit or catch a database error themselves.
    """

    def apply(session: Session, items: Sequence[BatchItem]) -> None:
        for envelope, data in items:
            with bind_traceparent(envelope.traceparent):
                handlers[type(data)](session, envelope, data)

    return apply


def projection_consumer(
    durable: str, handlers: Mapping[type[EventData], Handler], **options: Any
) -> Consumer:
    """A consumer whose handlers only write the service's database: fetches in one transaction."""
    return Consumer(durable, handlers, in_one_transaction=each_in_order(handlers), **options)


def handle_in_one_transaction(
    engine: Engine, consumer: Consumer, items: Sequence[BatchItem]
) -> list[Outcome]:
    """Apply the events not yet processed together, recorded as processed in one commit."""
    assert consumer.in_one_transaction is not None
    ids = [str(envelope.id) for envelope, _ in items]
    outcomes: list[Outcome] = []
    with Session(engine, expire_on_commit=False) as session:
        query = select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == consumer.durable, in_list(ProcessedEvent.event_id, ids)
        )
        seen = set(session.exec(query).all())
        todo: list[BatchItem] = []
        for envelope, data in items:
            if type(data) not in consumer.handlers:
                outcomes.append("ignored")
            elif str(envelope.id) in seen:
                outcomes.append("duplicate")  # also a second copy within this fetch
            else:
                seen.add(str(envelope.id))
                todo.append((envelope, data))
                outcomes.append("processed")
        if todo:
            consumer.in_one_transaction(session, todo)
            now = utcnow()
            session.execute(
                insert(ProcessedEvent),
                [
                    {
                        "consumer": consumer.durable,
                        "event_id": str(envelope.id),
                        "processed_at": now,
                    }
                    for envelope, _ in todo
                ],
            )
        session.commit()
    return outcomes


def unprocessed(engine: Engine, consumer: Consumer, event_ids: Sequence[str]) -> set[str]:
    """The ids among `event_ids` this consumer has not recorded as processed."""
    if not event_ids:
        return set()
    with Session(engine) as session:
        query = select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == consumer.durable,
            in_list(ProcessedEvent.event_id, event_ids),
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


class Held:
    """Messages kept, not settled, because a dependency failed: `cause` says which."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause


def prune_processed(
    engine: Engine, consumer: Consumer, older_than: datetime, *, batch: int = PRUNE_BATCH
) -> int:
    """Delete this consumer's processed-event records older than `older_than`, bounded."""
    removed = 0
    for _ in range(PRUNE_MAX_BATCHES):
        with Session(engine) as session:
            query = (
                select(ProcessedEvent.event_id)
                .where(
                    ProcessedEvent.consumer == consumer.durable,
                    col(ProcessedEvent.processed_at) < older_than,
                )
                .limit(batch)
            )
            ids = list(session.exec(query).all())
            if not ids:
                break
            session.execute(
                delete(ProcessedEvent).where(
                    col(ProcessedEvent.consumer) == consumer.durable,
                    in_list(ProcessedEvent.event_id, ids),
                )
            )
            session.commit()
        removed += len(ids)
        if len(ids) < batch:
            break
    return removed


class ConsumerRunner:
    """Pulls batches for one consumer and settles every message it receives.

    A transient failure (see `shared.events.failures`) settles nothing: the runner keeps
    the messages of that fetch, marks itself paused (readiness and the
    `knowflow_consumer_paused` gauge say so), and retries them after a capped
    exponential back-off, telling JetStream they are in progress so none is redelivered
    or counted. The retry is the probe: when it succeeds the runner resumes by itself.
    Other failures count per message (in this process) towards `max_deliveries`.
    """

    def __init__(self, engine: Engine, bus: Bus, consumer: Consumer) -> None:
        self.engine = engine
        self.bus = bus
        self.consumer = consumer
        self.paused_since: float | None = None
        self.paused_by: str | None = None
        self._failures: dict[int, int] = {}  # stream sequence -> non-transient failures
        self._last_pause_log = 0.0
        self._last_prune = 0.0
        self._fetch_failures = OutageLog(f"fetching for {consumer.durable}")
        CONSUMER_PAUSED.labels(consumer.durable).set(0)

    @property
    def paused(self) -> bool:
        """True while the consumer waits for an unavailable dependency."""
        return self.paused_since is not None

    async def run(self) -> None:
        await self.bus.js.add_consumer(self.bus.stream, self.consumer.config())
        subscription = await self.bus.js.pull_subscribe_bind(
            self.consumer.durable, stream=self.bus.stream
        )
        try:
            await self.pull(subscription)
        finally:
            await unsubscribe(subscription)

    async def pull(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            await self.prune_when_due()
            try:
                messages = await subscription.fetch(self.consumer.batch_size, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # NATS away: said once, then at intervals (the bus logs the outage too).
                self._fetch_failures.failed(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            self._fetch_failures.recovered()
            try:
                await self.settle_fetch(messages)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Unsettled messages are redelivered after ack_wait; the runner lives on.
                log.exception("settling a fetch failed for %s", self.consumer.durable)
                await asyncio.sleep(1.0)

    async def settle_fetch(self, messages: Sequence[Msg]) -> None:
        """Settle one fetch, waiting out dependency outages with the messages kept."""
        pending: Sequence[Msg] = messages
        attempt = 0
        while pending:
            if self.consumer.in_one_transaction is not None:
                pending, cause = await self.settle_in_one_transaction(pending)
            elif self.consumer.batch_handler is None:
                pending, cause = await self.settle_in_order(pending)
            else:
                pending, cause = await self.settle_batch(pending)
            if pending:
                attempt += 1
                reason = cause or DependencyUnavailable("kept without a cause")
                await self.wait_for_dependency(pending, reason, attempt)
        self.resume()

    async def settle_in_order(
        self, messages: Sequence[Msg]
    ) -> tuple[Sequence[Msg], BaseException | None]:
        """Settle one by one; at the first transient failure keep it and everything after."""
        for position, message in enumerate(messages):
            result = await self.settle(message)
            if isinstance(result, Held):
                return messages[position:], result.cause
        return [], None

    async def settle_in_one_transaction(
        self, messages: Sequence[Msg]
    ) -> tuple[Sequence[Msg], BaseException | None]:
        """Settle one fetch in one transaction; one message at a time if that fails."""
        decoded: list[tuple[Msg, BatchItem]] = []
        for message in messages:
            try:
                decoded.append((message, decode(message.data)))
            except PoisonMessage as exc:
                self._count(await self.park(message, str(exc)))
        if not decoded:
            return [], None
        try:
            outcomes = await asyncio.to_thread(
                handle_in_one_transaction,
                self.engine,
                self.consumer,
                [item for _, item in decoded],
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc):
                return [message for message, _ in decoded], exc
            log.warning(
                "batch of %d failed for %s, settling one at a time: %s",
                len(decoded),
                self.consumer.durable,
                exc,
            )
            return await self.settle_in_order([message for message, _ in decoded])
        for (message, _), outcome in zip(decoded, outcomes, strict=True):
            await self.ack(message)
            self._count(outcome)
        return [], None

    async def settle(self, message: Msg) -> Outcome | Held:
        outcome: Outcome
        try:
            outcome = await asyncio.to_thread(handle_one, self.engine, self.consumer, message.data)
        except PoisonMessage as exc:
            outcome = await self.park(message, str(exc))
        except Exception as exc:
            if is_transient(exc):
                return Held(exc)
            outcome = await self.retry_or_park(message, exc)
        else:
            await self.ack(message)
        self._count(outcome)
        return outcome

    async def settle_batch(
        self, messages: Sequence[Msg]
    ) -> tuple[Sequence[Msg], BaseException | None]:
        """Settle one fetch: batchable events through the batch handler, the rest one by one.

        Returns the messages kept because a dependency failed, and that failure.
        """
        batch = self.consumer.batch_handler
        assert batch is not None
        held: list[Msg] = []
        cause: BaseException | None = None
        batched: list[tuple[Msg, BatchItem]] = []
        for message in messages:
            try:
                envelope, data = decode(message.data)
            except PoisonMessage as exc:
                self._count(await self.park(message, str(exc)))
                continue
            if isinstance(data, batch.event_types):
                batched.append((message, (envelope, data)))
                continue
            result = await self.settle(message)
            if isinstance(result, Held):
                held.append(message)
                cause = result.cause
        if not batched:
            return held, cause
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
            if is_transient(exc):
                return [*held, *(message for message, _ in batched)], exc
            log.exception("batch of %d failed for %s", len(batched), self.consumer.durable)
            for message, _ in batched:
                self._count(await self.retry_or_park(message, exc))
            return held, cause
        applied = {id(message): result for (message, _), result in zip(todo, results, strict=True)}
        for message, _ in batched:
            error = applied.get(id(message))
            if error is None:
                await self.ack(message)
                self._count("processed" if id(message) in applied else "duplicate")
            elif is_transient(error):
                held.append(message)
                cause = error
            else:
                self._count(await self.retry_or_park(message, error))
        return held, cause

    async def wait_for_dependency(
        self, held: Sequence[Msg], cause: BaseException, attempt: int
    ) -> None:
        """Pause before retrying `held`: capped exponential back-off, messages kept ours."""
        now = time.monotonic()
        reason = f"{type(cause).__name__}: {cause}"[:300]
        if self.paused_since is None:
            self.paused_since = now
            self._last_pause_log = now
            CONSUMER_PAUSED.labels(self.consumer.durable).set(1)
            log.warning(
                "%s paused, %d message(s) kept: a dependency is unavailable (%s)",
                self.consumer.durable,
                len(held),
                reason,
            )
        elif now - self._last_pause_log >= PAUSE_LOG_INTERVAL_SECONDS:
            self._last_pause_log = now
            log.warning(
                "%s still paused after %.0f s (%s)",
                self.consumer.durable,
                now - self.paused_since,
                reason,
            )
        self.paused_by = reason
        delay = min(PAUSE_FIRST_DELAY_SECONDS * 2 ** (attempt - 1), PAUSE_MAX_DELAY_SECONDS)
        deadline = now + delay
        # Tell JetStream the kept messages are in progress more often than ack_wait: then
        # it neither redelivers them nor spends a delivery of their budget.
        keep_alive = max(self.consumer.ack_wait_seconds / 3, 0.1)
        while True:
            await self.keep_in_progress(held)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, keep_alive))

    async def keep_in_progress(self, held: Sequence[Msg]) -> None:
        for message in held:
            try:
                await message.in_progress()
            except Exception:
                # NATS is away too: the message is redelivered later, and deduplicated.
                return

    def resume(self) -> None:
        if self.paused_since is None:
            return
        log.warning(
            "%s resumed after %.1f s paused",
            self.consumer.durable,
            time.monotonic() - self.paused_since,
        )
        self.paused_since = None
        self.paused_by = None
        CONSUMER_PAUSED.labels(self.consumer.durable).set(0)

    async def ack(self, message: Msg) -> None:
        self._failures.pop(message.metadata.sequence.stream, None)
        try:
            await message.ack()
        except Exception as exc:
            # Committed already: a redelivery is recognised as a duplicate.
            log.warning("ack failed for %s: %s", message.subject, exc)

    async def retry_or_park(self, message: Msg, exc: BaseException) -> Outcome:
        """Nak with back-off, or park once the message failed `max_deliveries` times.

        Counts only failures that are the message's fault: JetStream's num_delivered also
        counts redeliveries after outages and restarts, so it is not the budget.
        """
        sequence = message.metadata.sequence.stream
        failures = self._failures.pop(sequence, 0) + 1
        if failures >= self.consumer.max_deliveries:
            return await self.park(message, f"{type(exc).__name__}: {exc}")
        self._failures[sequence] = failures
        while len(self._failures) > MAX_TRACKED_FAILURES:  # settled elsewhere (a replica)
            self._failures.pop(next(iter(self._failures)))
        log.warning("handler failed (failure %d of %s): %s", failures, message.subject, exc)
        await message.nak(delay=min(0.2 * 2**failures, 10.0))
        return "retry"

    def _count(self, outcome: Outcome) -> None:
        if self.consumer.on_outcome:
            self.consumer.on_outcome(outcome)

    async def park(self, message: Msg, error: str) -> Outcome:
        """Put a message that cannot be processed on the dead-letter subject, then ack it."""
        log.error("parking message from %s: %s", message.subject, error)
        original = (message.headers or {}).get(ORIGINAL_SUBJECT_HEADER, message.subject)
        headers: dict[str, Any] = {
            "Knowflow-Error": error[:1000].replace("\n", " "),
            ORIGINAL_SUBJECT_HEADER: original,
            CONSUMER_HEADER: self.consumer.durable,
        }
        await self.bus.js.publish(
            dead_letter_subject(self.consumer.durable), message.data, headers=headers
        )
        EVENTS_PARKED.labels(self.consumer.durable).inc()
        await self.ack(message)
        return "parked"

    async def prune_when_due(self) -> None:
        """Forget processed events the stream can no longer redeliver, once an hour."""
        now = time.monotonic()
        if self._last_prune and now - self._last_prune < PRUNE_INTERVAL_SECONDS:
            return
        self._last_prune = now
        try:
            removed = await asyncio.to_thread(
                prune_processed, self.engine, self.consumer, utcnow() - PROCESSED_EVENTS_KEPT_FOR
            )
        except Exception as exc:
            log.warning("pruning processed events of %s failed: %s", self.consumer.durable, exc)
            return
        if removed:
            log.info("pruned %d processed event(s) of %s", removed, self.consumer.durable)
