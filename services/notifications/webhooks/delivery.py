"""The dispatcher: claims due deliveries on a schedule and POSTs them, signed.

Each tick (`shared.schedule.run_every`) leases due deliveries in a worker thread and hands
them to the event loop, where each is sent as its own task: the tick never waits for a
send, so one slow endpoint holds only its own concurrency slots (see `claim_due`).
Every replica runs this; leases make each attempt happen in one of them.

A request is the CloudEvent JSON (`application/cloudevents+json`) with the Standard
Webhooks headers, signed with `standardwebhooks` at send time (fresh timestamp per
attempt). Redirects are not followed (a 3xx is a failure) and at most
`webhook_max_response_bytes` of an answer is read.
"""

import asyncio
import logging
import threading
from datetime import datetime
from uuid import UUID

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine
from standardwebhooks import Webhook

from services.notifications.webhooks.secrets import unseal
from services.notifications.webhooks.service import (
    Claim,
    Outcome,
    claim_due,
    is_private_address,
    prune,
    record_result,
    release_claims,
)
from shared.ids import utcnow
from shared.schedule import run_every
from shared.settings import Settings
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
USER_AGENT = "Knowflow-Webhooks/1"
PRUNE_EVERY_TICKS = 600


def signed_headers(*, claim: Claim, secret: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt; `webhook-id` is the event id."""
    message_id = str(claim.event_id)
    return {
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, claim.body),
    }


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """At most `cap` bytes of the answer; the rest is never read."""
    taken = bytearray()
    async for chunk in response.aiter_raw():
        taken.extend(chunk[: cap - len(taken)])
        if len(taken) >= cap:
            break
    return bytes(taken)


async def attempt(client: httpx.AsyncClient, claim: Claim, settings: Settings) -> Outcome:
    """POST once; any answer but a 2xx, and any transport error, is a failure."""
    if settings.webhook_refuse_private_networks:
        host = httpx.URL(claim.url).host
        if await asyncio.to_thread(is_private_address, host):
            return Outcome(None, f"refused: {host} is a private network address")
    try:
        secret = unseal(claim.secret_encrypted, key_file=settings.webhook_secret_key_file)
        headers = signed_headers(claim=claim, secret=secret, now=utcnow())
        request = client.build_request("POST", claim.url, content=claim.body, headers=headers)
        response = await client.send(request, stream=True)
        try:
            answer = await read_capped(response, settings.webhook_max_response_bytes)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}" or type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, None)
    excerpt = answer[:200].decode("utf-8", "replace")
    if response.is_redirect:
        excerpt = f"redirect to {response.headers.get('location', '?')} (not followed)"
    return Outcome(response.status_code, f"HTTP {response.status_code}: {excerpt}")


class Dispatcher:
    """The sending half of a replica: the schedule task and the sends in flight."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            trust_env=False,  # no proxy from the environment: endpoints are what admins set
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sends: set[asyncio.Task[None]] = set()
        # Leased and not yet recorded; released at shutdown. The lock makes a tick that is
        # still running in its thread finish before shutdown reads this.
        self.leased: dict[UUID, Claim] = {}
        self.lock = threading.Lock()
        self.closing = False
        self.ticks = 0

    def tick(self) -> None:
        """Runs in a worker thread: lease what is due and start sending it on the loop."""
        with self.lock:
            if self.closing:
                return
            now = utcnow()
            self.ticks += 1
            if self.ticks % PRUNE_EVERY_TICKS == 1:
                prune(engine=self.engine, settings=self.settings, now=now)
            claims = claim_due(engine=self.engine, settings=self.settings, now=now)
            assert self.loop is not None
            for claim in claims:
                self.leased[claim.delivery_id] = claim
                self.loop.call_soon_threadsafe(self._start, claim)

    def _start(self, claim: Claim) -> None:
        if self.closing:
            return  # released by close()
        task = asyncio.create_task(self.send(claim), name=f"webhook-{claim.delivery_id}")
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def send(self, claim: Claim) -> None:
        try:
            outcome = await attempt(self.client, claim, self.settings)
            await asyncio.to_thread(
                record_result,
                engine=self.engine,
                claim=claim,
                outcome=outcome,
                settings=self.settings,
                now=utcnow(),
            )
        except asyncio.CancelledError:
            raise  # shutting down: close() releases the lease
        except Exception:
            log.exception("webhook delivery %s failed to complete", claim.delivery_id)
        self.leased.pop(claim.delivery_id, None)

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        await run_every(
            self.settings.webhook_dispatch_tick_seconds, self.tick, name="sending webhooks"
        )

    def _stop_ticking(self) -> None:
        with self.lock:
            self.closing = True

    async def close(self) -> None:
        """Stop sending; leases of interrupted sends are released, so no one waits them out."""
        await asyncio.to_thread(self._stop_ticking)
        await stop_tasks(list(self.sends))
        await self.client.aclose()
        interrupted = list(self.leased.values())
        if interrupted:
            await asyncio.to_thread(lambda: release_claims(engine=self.engine, claims=interrupted))


async def start_webhooks(app: FastAPI) -> None:
    """Start this replica's dispatcher (a notifications start-up hook)."""
    dispatcher = Dispatcher(app.state.engine, app.state.settings)
    app.state.webhook_dispatcher = dispatcher
    app.state.webhook_schedule = asyncio.create_task(dispatcher.run(), name="webhooks-dispatch")


async def stop_webhooks(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "webhook_schedule", None)
    if task is not None:
        await stop_tasks([task])
    dispatcher: Dispatcher | None = getattr(app.state, "webhook_dispatcher", None)
    if dispatcher is not None:
        await dispatcher.close()
