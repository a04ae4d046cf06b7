"""The connection to NATS JetStream and the streams Knowflow relies on."""

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.events.envelope import DEAD_LETTER_ROOT, SUBJECT_ROOT

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0
STREAM_MAX_AGE_SECONDS = 90 * 24 * 3600.0


class Bus:
    """One NATS connection per process with its JetStream context."""

    def __init__(self, client: Client, stream: str) -> None:
        self.client = client
        self.js: JetStreamContext = client.jetstream()
        self.stream = stream
        self.dead_letter_stream = f"{stream}_DEADLETTER"

    @classmethod
    async def connect(cls, url: str, *, stream: str, name: str, attempts: int = 60) -> "Bus":
        """Connect, retrying while the server starts, and make sure the streams exist."""
        last_error: Exception | None = None
        for _ in range(attempts):
            try:
                client = await nats.connect(
                    url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5
                )
                break
            except Exception as exc:  # server not up yet: try again shortly
                last_error = exc
                await asyncio.sleep(0.5)
        else:
            raise ConnectionError(f"cannot reach NATS at {url}") from last_error
        bus = cls(client, stream)
        await bus.ensure_streams()
        return bus

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
        if self.client.is_closed:
            return
        try:
            await asyncio.wait_for(self.client.drain(), timeout=5)
        except Exception:
            await self.client.close()
