"""Live notifications over Server-Sent Events: one hub per replica wakes a person's streams.

Every replica subscribes (plain core NATS, on the bus's client) to the subject the outbox
relay publishes `NotificationCreated` on; JetStream-bound messages reach core subscribers
too, so a notification stored through any replica wakes the streams held by every one.
A wake-up carries no data: the woken stream reads its new rows from the database (one
indexed query, permission checked in SQL for every row), so what is sent is always what
the person may see now, and a lost or duplicated wake-up costs nothing. Each stream
also re-reads at every heartbeat, which catches a wake-up lost while NATS was away.

Ordering: ids are UUIDv7 taken when the row is built, but a transaction that took an
earlier id may commit after one with a later id (PostgreSQL, two replicas). A stream
therefore never trusts "after the last id sent": it reads everything newer than
`SETTLE` and skips the ids it already sent, so a late commit is still delivered once.

Per stream the state is a `Listener` (an Event) and a bounded set of recent ids; there
is no task per stream besides the response itself, and no polling between heartbeats.
"""

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any
from uuid import UUID

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Gauge
from sqlalchemy import ColumnElement, Engine, exists, func, or_
from sqlmodel import Session, col, select

from services.notifications.models import Notification, NotifiedMembership, NotifiedUser
from services.notifications.schemas import notification_public
from shared.events.bus import Bus
from shared.events.contracts import NotificationCreated
from shared.events.envelope import subject_for
from shared.ids import utcnow

log = logging.getLogger(__name__)

SUBJECT = subject_for(NotificationCreated.event_type, "restricted")
# How long after taking its id a notification's transaction may still commit (a request's
# statements time out after 5 s; consumers commit within seconds).
SETTLE = timedelta(seconds=30)
PAGE = 100  # rows per read; more are read in further pages of the same wake-up
MAX_PAGES = 10  # a burst beyond PAGE * MAX_PAGES is sent at the next wake-up or heartbeat
MAX_REMEMBERED = 1_000  # ids a stream remembers to skip; beyond, it stops looking back
RETRY_MILLISECONDS = 2_000  # how soon an EventSource reconnects after the stream ends

OPEN_STREAMS = Gauge("knowflow_notifications_open_streams", "Live streams this replica holds")


def uuid7_floor(moment: datetime) -> UUID:
    """The smallest UUIDv7 of `moment`'s millisecond: ids below it were taken earlier."""
    return UUID(int=int(moment.timestamp() * 1000) << 80)


class Listener:
    """One open stream of one person: set when something may be new for them."""

    __slots__ = ("user_id", "woken")

    def __init__(self, user_id: UUID) -> None:
        self.user_id = user_id
        self.woken = asyncio.Event()


class LiveHub:
    """A replica's open streams by person, woken by `NotificationCreated` on NATS."""

    def __init__(self) -> None:
        self.listeners: dict[UUID, set[Listener]] = {}
        self.closing = asyncio.Event()
        self.subscription: Subscription | None = None
        self._chained: dict[int, Any] = {}

    @property
    def open_streams(self) -> int:
        return sum(len(listeners) for listeners in self.listeners.values())

    async def start(self, bus: Bus) -> None:
        """Subscribe to the wake-ups and end the streams when the process is told to stop."""
        self.subscription = await bus.client.subscribe(SUBJECT, cb=self._on_message)
        self._chain_exit_signals()

    async def stop(self) -> None:
        self.close_streams()
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()
            self.subscription = None

    def listen(self, user_id: UUID) -> Listener:
        listener = Listener(user_id)
        self.listeners.setdefault(user_id, set()).add(listener)
        OPEN_STREAMS.inc()
        return listener

    def forget(self, listener: Listener) -> None:
        listeners = self.listeners.get(listener.user_id)
        if listeners is not None and listener in listeners:
            OPEN_STREAMS.dec()
            listeners.discard(listener)
            if not listeners:
                del self.listeners[listener.user_id]

    def wake(self, user_id: UUID) -> None:
        for listener in self.listeners.get(user_id, ()):
            listener.woken.set()

    def close_streams(self) -> None:
        """End every open stream (their clients reconnect, to another replica if need be)."""
        self.closing.set()
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.woken.set()

    async def _on_message(self, message: Msg) -> None:
        try:
            user_id = UUID(orjson.loads(message.data)["data"]["user_id"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed %s message: %s", SUBJECT, exc)
            return
        self.wake(user_id)

    def _chain_exit_signals(self) -> None:
        """uvicorn waits for open responses before it shuts down, and a stream never ends
        by itself: on SIGTERM/SIGINT end the streams first, then let uvicorn's handler run."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(sig)
            except ValueError:  # not the main thread (tests serving in a thread)
                return

            def on_exit(number: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.close_streams)
                if callable(previous):
                    previous(number, frame)

            try:
                signal.signal(sig, on_exit)
            except ValueError:
                return
            self._chained[sig] = previous


_hub_lock = asyncio.Lock()


async def live_hub(state: Any) -> LiveHub:
    """The replica's hub, started on the first stream (`state` is the app's state)."""
    hub: LiveHub | None = getattr(state, "live_hub", None)
    if hub is not None:
        return hub
    async with _hub_lock:
        hub = getattr(state, "live_hub", None)
        if hub is None:
            hub = LiveHub()
            await hub.start(state.bus)
            # A revoked token's open stream ends within the revocation's seconds too.
            state.verifier.revocations.watch(lambda revoked: hub.wake(revoked.user_id))
            state.live_hub = hub
    return hub


def _visible_to(user_id: UUID) -> ColumnElement[bool]:
    """Public, or of a group the person is a member of now (checked per row, in SQL)."""
    member = exists().where(
        col(NotifiedMembership.group_id) == col(Notification.group_id),
        col(NotifiedMembership.user_id) == user_id,
        col(NotifiedMembership.active).is_(True),
    )
    return or_(col(Notification.group_id).is_(None), member)


@dataclass
class Reading:
    rows: list[tuple[Notification, NotifiedUser | None]]
    unread: int  # -1: not counted
    more: bool  # the last page was full: read again at once


def read_new(
    engine: Engine, *, user_id: UUID, after: UUID, skip: set[UUID], with_unread: bool
) -> Reading:
    """Rows after `after` the person may see, less `skip`, oldest first; and the unread count."""
    rows: list[tuple[Notification, NotifiedUser | None]] = []
    visible = _visible_to(user_id)
    more = False
    with Session(engine) as session:
        cursor = after
        for _ in range(MAX_PAGES):
            page = session.exec(
                select(Notification, NotifiedUser)
                .outerjoin(NotifiedUser, col(NotifiedUser.user_id) == col(Notification.actor_id))
                .where(Notification.user_id == user_id, col(Notification.id) > cursor, visible)
                .order_by(col(Notification.id))
                .limit(PAGE)
            ).all()
            rows.extend((row, actor) for row, actor in page if row.id not in skip)
            more = len(page) == PAGE
            if not more:
                break
            cursor = page[-1][0].id
        unread = -1
        if with_unread or rows:
            unread = session.exec(
                select(func.count())
                .select_from(Notification)
                .where(
                    Notification.user_id == user_id,
                    col(Notification.read_at).is_(None),
                    visible,
                )
            ).one()
    return Reading(rows=rows, unread=int(unread), more=more and bool(rows))


def sse_event(event: str, data: bytes | str, event_id: UUID | None = None) -> bytes:
    """One Server-Sent Event (`data` is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = data.decode() if isinstance(data, bytes) else data
    return f"{head}event: {event}\ndata: {payload}\n\n".encode()


HEARTBEAT = b": heartbeat\n\n"


@dataclass
class StreamCursor:
    """Where a stream stands: everything after `start` not in `sent` is still to send."""

    start: UUID
    sent: set[UUID] = field(default_factory=set)
    order: deque[UUID] = field(default_factory=deque)
    unread: int | None = None

    def lower_bound(self, now: datetime) -> UUID:
        settled = uuid7_floor(now - SETTLE)
        return max(self.start, settled)

    def prune(self, bound: UUID) -> None:
        while self.order and self.order[0] <= bound:
            self.sent.discard(self.order.popleft())

    def remember(self, notification_id: UUID) -> None:
        self.sent.add(notification_id)
        self.order.append(notification_id)
        while len(self.order) > MAX_REMEMBERED:
            # Too many to remember: stop looking back past the oldest one forgotten.
            forgotten = self.order.popleft()
            self.sent.discard(forgotten)
            self.start = max(self.start, forgotten)


async def notification_stream(
    *,
    hub: LiveHub,
    engine: Engine,
    user_id: UUID,
    last_event_id: UUID | None,
    heartbeat_seconds: float,
    now: Callable[[], datetime] = utcnow,
    revoked: Callable[[], bool] = lambda: False,
) -> AsyncGenerator[bytes, None]:
    """The person's stream: missed items first (after `last_event_id`), then each new one.

    It ends when its token is `revoked()` (the hub wakes the person's streams then).
    """
    listener = hub.listen(user_id)
    cursor = StreamCursor(start=last_event_id or uuid7_floor(now()))
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        heartbeat_due = True  # the first read also sends the unread count
        while not hub.closing.is_set() and not revoked():
            listener.woken.clear()
            bound = cursor.lower_bound(now())
            cursor.prune(bound)
            reading = await asyncio.to_thread(
                read_new,
                engine,
                user_id=user_id,
                after=bound,
                skip=cursor.sent,
                with_unread=heartbeat_due,
            )
            for notification, actor in reading.rows:
                body = notification_public(notification, actor).model_dump_json()
                cursor.remember(notification.id)
                yield sse_event("notification", body, notification.id)
            if reading.unread >= 0 and reading.unread != cursor.unread:
                cursor.unread = reading.unread
                yield sse_event("unread", orjson.dumps({"unread": reading.unread}))
            heartbeat_due = False
            if listener.woken.is_set() or reading.more:
                continue  # woken while reading, or a backlog: read again
            try:
                async with asyncio.timeout(heartbeat_seconds):
                    await listener.woken.wait()
            except TimeoutError:
                heartbeat_due = True
                yield HEARTBEAT
    finally:
        hub.forget(listener)
