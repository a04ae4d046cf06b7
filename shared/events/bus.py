"""The connection to NATS JetStream and the streams Knowflow relies on."""

import asyncio
import contextlib
import logging
import time

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.events.envelope import DEAD_LETTER_ROOT, SUBJECT_ROOT

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0
STREAM_MAX_AGE_SECONDS = 90 * 24 * 3600.0


OUTAGE_LOG_INTERVAL_SECONDS = 30.0


class OutageLog:
    """Logs an outage once when it starts, then at most once per interval until it ends."""

    def __init__(self, what: str, interval: float = OUTAGE_LOG_INTERVAL_SECONDS) -> None:
        self.what = what
        self.interval = interval
        self.since: float | None = None
        self._last_log = 0.0
        self._failures = 0

    def failed(self, error: BaseException | str) -> None:
        now = time.monotonic()
        self._failures += 1
        if self.since is None:
            self.since, self._last_log = now, now
            log.warning("%s unavailable: %s", self.what, error)
        elif now - self._last_log >= self.interval:
            self._last_log = now
            log.warning(
                "%s still unavailable after %.0f s (%d failed attempts): %s",
                self.what,
                now - self.since,
                self._failures,
                error,
            )

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("%s back after %.1f s", self.what, time.monotonic() - self.since)
        self.since = None
        self._failures = 0


class ConnectionWatch:
    """The NATS client's callbacks: an outage is logged once, not per reconnect attempt."""

    def __init__(self, name: str) -> None:
        self.outage = OutageLog(f"NATS ({name})")
        self.connected = asyncio.Event()
        self.connected.set()
        self.closing = False

    async def on_disconnected(self) -> None:
        self.connected.clear()
        if not self.closing:  # our own close is no outage
            self.outage.failed("connection lost, reconnecting")

    async def on_reconnected(self) -> None:
        self.connected.set()
        self.outage.recovered()

    async def on_error(self, error: Exception) -> None:
        # nats-py reports every failed reconnect attempt here (by default with a traceback).
        self.outage.failed(f"{type(error).__name__}: {error}")


class Bus:
    """One NATS connection per process with its JetStream context."""

    def __init__(self, client: Client, stream: str, watch: ConnectionWatch | None = None) -> None:
        self.client = client
        self.js: JetStreamContext = client.jetstream()
        self.stream = stream
        self.dead_letter_stream = f"{stream}_DEADLETTER"
        self.watch = watch or ConnectionWatch(stream)

    @classmethod
    async def connect(cls, url: str, *, stream: str, name: str, attempts: int = 60) -> "Bus":
        """Connect, retrying while the server starts, and make sure the streams exist."""
        last_error: Exception | None = None
        watch = ConnectionWatch(name)
        for _ in range(attempts):
            try:
                client = await nats.connect(
                    url,
                    name=name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    disconnected_cb=watch.on_disconnected,
                    reconnected_cb=watch.on_reconnected,
                    error_cb=watch.on_error,
                )
                break
            except Exception as exc:  # server not up yet: try again shortly
                last_error = exc
                await asyncio.sleep(0.5)
        else:
            raise ConnectionError(f"cannot reach NATS at {url}") from last_error
        bus = cls(client, stream, watch)
        await bus.ensure_streams()
        return bus

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to `timeout` for the connection to be up; whether it is."""
        if self.is_connected:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.watch.connected.wait(), timeout)
        return self.is_connected

    async def ensure_streams(self) -> None:
        await self._ensure(
            StreamConfig(
                name=self.stream,
                subjects=[f"{SUBJECT_ROOT}.>"],
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                discard=DiscardPolicy.OLD,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=STREAM_MAX_AGE_SECONDS,
            )
        )
        await self._ensure(
            StreamConfig(
                name=self.dead_letter_stream,
                subjects=[f"{DEAD_LETTER_ROOT}.>"],
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
            )
        )

    async def _ensure(self, config: StreamConfig) -> None:
        try:
            await self.js.stream_info(config.name or "")
        except NotFoundError:
            try:
                await self.js.add_stream(config)
            except Exception:
                # Another process created it between our check and our add.
                await self.js.stream_info(config.name or "")

    @property
    def is_connected(self) -> bool:
        return bool(self.client.is_connected)

    async def close(self) -> None:
        """Drain (deliver what callback subscriptions hold, flush publishes), then close.

        Pull subscriptions must be unsubscribed by their readers first (`unsubscribe`):
        drain waits until a subscription's queue is empty and accounted for, which a pull
        subscription nobody fetches from any more never is.
        """
        if self.client.is_closed:
            return
        self.watch.closing = True
        try:
            await asyncio.wait_for(self.client.drain(), timeout=5)
        except Exception:
            await self.client.close()


async def unsubscribe(subscription: JetStreamContext.PullSubscription) -> None:
    """Stop a pull subscription whose reader is done, so the bus's drain does not wait for it.

    nats-py takes stale status messages (the 408 of an expired pull) off the queue without
    marking them done, so a drained pull subscription waits out the whole drain timeout.
    Messages fetched and not acknowledged are redelivered by JetStream after `ack_wait`.
    """
    with contextlib.suppress(Exception):  # the connection may already be closed
        await subscription.unsubscribe()
