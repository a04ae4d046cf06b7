"""Token revocation: every process that verifies tokens refuses revoked ones within seconds.

Identity records an `AccessRevoked` event (through its outbox) when a person is deactivated,
signs out, changes their password...; every token verifier (each service replica and the
gateway) follows those events and refuses matching tokens from then on:

- with `session_id`: every token of that session (sign-in);
- without: every token of `user_id` issued at or before `not_before` (a token issued
  later, after a reactivation or a new sign-in, is accepted).

A revocation is kept only while a token it names could still be alive: a token issued at
or before `not_before` has expired `max token lifetime + leeway` later, so the revocation
is forgotten then, and the set stays as small as the recent revocations.

How a process learns them: its own ephemeral JetStream consumer on the restricted subject
`events.restricted.auth.access_revoked.v1`, starting at `now - (max lifetime + leeway)`.
The stream keeps events far longer than a token lives, so a process that starts or
restarts reads every revocation still in force before it serves a request (start-up
waits until the consumer has caught up), then follows new ones as they are published
(a pull that is answered as soon as one arrives). Every process reads every revocation
(no queue group, no durable shared with replicas), and nothing needs acking. If the
consumer disappears (NATS restarted, or this process was away past the consumer's
inactivity threshold), it is made again from the next stream sequence not yet read, so
nothing published meanwhile is missed. A core-NATS subscription alone would miss what was
published while disconnected and would know nothing at start; a durable consumer per
process would outlive the process. nats-py's ordered consumer was not used: its reset
after a gap keeps the start-time option alongside the start sequence, which the server
refuses, and it reports that failure only to the error callback.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from shared.events.bus import Bus, OutageLog, unsubscribe
from shared.events.contracts import AccessRevoked
from shared.events.envelope import CloudEvent, subject_for
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

REVOCATION_SUBJECT = subject_for(AccessRevoked.event_type, "restricted")
# An idle follower checks that its consumer still exists this often.
CONSUMER_CHECK_SECONDS = 5.0
# The server drops a follower's consumer after this long without a pull (process gone).
INACTIVE_THRESHOLD_SECONDS = 60.0
FETCH_BATCH = 256


class Revocations:
    """The revocations in force in this process; safe to read from any thread.

    `keep_seconds` is how long a token issued at `not_before` can be accepted: the longest
    lifetime a verifier allows plus its clock leeway.
    """

    def __init__(self, *, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        # user -> (tokens issued at or before this epoch time are refused, forget at)
        self._users: dict[UUID, tuple[float, float]] = {}
        # session -> forget at
        self._sessions: dict[UUID, float] = {}
        self._lock = threading.Lock()
        self.last_applied: float | None = None  # monotonic time of the last revocation read
        # Told of each revocation kept (on the event loop), e.g. to end open event streams.
        self._watchers: list[Callable[[AccessRevoked], None]] = []

    def watch(self, callback: Callable[[AccessRevoked], None]) -> None:
        """Call `callback` with every revocation from now on (it must not block)."""
        self._watchers.append(callback)

    def add(self, revoked: AccessRevoked) -> None:
        """Refuse what `revoked` names until its tokens cannot be alive any more."""
        not_before = revoked.not_before.timestamp()
        forget_at = not_before + self.keep_seconds
        if forget_at <= time.time():
            return  # every token it names has expired already
        with self._lock:
            if revoked.session_id is not None:
                previous = self._sessions.get(revoked.session_id, 0.0)
                self._sessions[revoked.session_id] = max(previous, forget_at)
            else:
                # The later revocation of a user covers every earlier one.
                current = self._users.get(revoked.user_id)
                if current is None or current[0] < not_before:
                    self._users[revoked.user_id] = (not_before, forget_at)
        self.last_applied = time.monotonic()
        for callback in self._watchers:
            try:
                callback(revoked)
            except Exception:
                log.exception("a revocation watcher failed")

    def refuses(self, *, user_id: UUID, session_id: UUID | None, issued_at: float) -> bool:
        """Whether a token of `user_id` (in `session_id`, issued at `issued_at`) is revoked."""
        by_user = self._users.get(user_id)
        if by_user is not None and issued_at <= by_user[0]:
            return True
        return session_id is not None and session_id in self._sessions

    def forget_expired(self, now: float | None = None) -> int:
        """Drop revocations whose tokens have all expired; how many were dropped."""
        now = time.time() if now is None else now
        with self._lock:
            users = [user for user, (_, forget_at) in self._users.items() if forget_at <= now]
            sessions = [
                session for session, forget_at in self._sessions.items() if forget_at <= now
            ]
            for user in users:
                del self._users[user]
            for session in sessions:
                del self._sessions[session]
        return len(users) + len(sessions)

    def __len__(self) -> int:
        return len(self._users) + len(self._sessions)


class RevocationFeed:
    """Follows `AccessRevoked` on the bus into a `Revocations` (one per process)."""

    def __init__(self, bus: Bus, revocations: Revocations, *, name: str) -> None:
        self.bus = bus
        self.revocations = revocations
        self.name = name
        self.caught_up = asyncio.Event()
        self._next_sequence: int | None = None  # the next stream sequence to read
        self._consumer: str | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._outage = OutageLog(f"revocation feed ({name})")

    async def start(self, *, timeout: float = 30.0) -> None:
        """Start following and wait until every revocation still in force has been read."""
        self._task = asyncio.create_task(self.run(), name=f"{self.name}-revocations")
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise ConnectionError(
                f"could not read the revocations in force within {timeout:.0f} s"
            ) from None

    async def stop(self) -> None:
        """Stop following and remove this process's consumer (else the server drops it later)."""
        await stop_tasks([self._task])
        self._task = None
        if self._subscription is not None:
            await unsubscribe(self._subscription)
            self._subscription = None
        with contextlib.suppress(Exception):
            if self._consumer is not None and self.bus.is_connected:
                await self.bus.js.delete_consumer(self.bus.stream, self._consumer)

    def _config(self) -> ConsumerConfig:
        config = ConsumerConfig(
            filter_subject=REVOCATION_SUBJECT,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=INACTIVE_THRESHOLD_SECONDS,
            mem_storage=True,
            num_replicas=1,
        )
        if self._next_sequence is None:
            start = datetime.now(UTC) - timedelta(seconds=self.revocations.keep_seconds)
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = start
        else:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self._next_sequence
        return config

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = self.bus.js
        info = await js.add_consumer(self.bus.stream, self._config())
        self._consumer = info.name
        if not info.num_pending:
            self.caught_up.set()
        self._subscription = await js.pull_subscribe_bind(info.name, stream=self.bus.stream)
        return self._subscription

    async def _consumer_exists(self) -> bool:
        assert self._consumer is not None
        try:
            await self.bus.js.consumer_info(self.bus.stream, self._consumer)
        except NotFoundError:
            return False
        return True

    async def run(self) -> None:
        """Follow until cancelled; after a failure, resume after the last revocation read."""
        while True:
            try:
                subscription = await self._subscribe()
                await self._follow(subscription)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._outage.failed(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
            if self._subscription is not None:
                await unsubscribe(self._subscription)
                self._subscription = None

    async def _follow(self, subscription: JetStreamContext.PullSubscription) -> None:
        """Read until the consumer is gone (then the caller makes a new one)."""
        idle_since = time.monotonic()
        while True:
            self.revocations.forget_expired()
            try:
                messages = await subscription.fetch(FETCH_BATCH, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                self.caught_up.set()  # nothing pending
                if time.monotonic() - idle_since >= CONSUMER_CHECK_SECONDS:
                    idle_since = time.monotonic()
                    if not await self._consumer_exists():
                        log.warning("revocation consumer of %s is gone; resuming", self.name)
                        return
                continue
            self._outage.recovered()
            idle_since = time.monotonic()
            for message in messages:
                self.apply(message.data)
                self._next_sequence = message.metadata.sequence.stream + 1
                if message.metadata.num_pending == 0:
                    self.caught_up.set()

    def apply(self, payload: bytes) -> None:
        """Add one revocation from its CloudEvent; what cannot be read is logged and skipped."""
        try:
            envelope = CloudEvent.model_validate_json(payload)
            revoked = AccessRevoked.model_validate(envelope.data)
        except (ValidationError, ValueError) as exc:
            log.error("unreadable revocation skipped: %s", exc)
            return
        self.revocations.add(revoked)
