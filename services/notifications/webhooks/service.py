"""The webhook rules: endpoints and grants, the retained event log, deliveries and leases.

An event is stored once (`WebhookEvent`) with one `WebhookDelivery` per enabled endpoint
whose grant covers it, in the consumer's transaction. Senders claim due deliveries with
a lease (`claim_due`), POST them (`delivery.py`) and record the result under the same
lease (`record_result`): a sender whose lease expired cannot overwrite a newer claim.
Delivery is at least once; the `webhook-id` (the event id) lets a receiver dedupe.
"""

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import Engine, delete, func, or_, update
from sqlmodel import Session, col, select

from services.notifications.webhooks.grants import Grant, check_types, public_types
from services.notifications.webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from services.notifications.webhooks.schemas import (
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
)
from services.notifications.webhooks.secrets import new_secret, seal
from shared.db import in_list
from shared.errors import BadRequest, Conflict, NotFound
from shared.events.contracts import UserErasureRequested, WebhookEndpointDisabled
from shared.events.envelope import CloudEvent
from shared.events.outbox import record_event
from shared.ids import new_id, utcnow
from shared.pagination import decode_cursor, paginate
from shared.settings import Settings

SOURCE = "/knowflow/notifications"
ERROR_CHARS = 500
PRUNE_BATCH = 500


# --- endpoints ---------------------------------------------------------------------------


def endpoint_public(endpoint: WebhookEndpoint) -> EndpointPublic:
    return EndpointPublic.model_validate(endpoint.model_dump(exclude={"secret_encrypted"}))


def check_endpoint(*, session: Session, endpoint_id: UUID) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def is_private_address(host: str) -> bool:
    """Whether `host` is, or resolves to, a loopback, private, link-local or reserved address."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False  # unresolvable: delivery fails on its own and is retried
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if not ip.is_global:
            return True
    return False


def check_url(url: str, *, settings: Settings) -> str:
    if settings.webhook_refuse_private_networks:
        host = urlsplit(url).hostname or ""
        if is_private_address(host):
            raise BadRequest(f"{host} is a private network address; this install refuses those")
    return url


def check_subscription(
    *, event_types: Sequence[str], restricted_event_types: Sequence[str]
) -> None:
    problems = [
        *check_types(event_types, restricted=False),
        *check_types(restricted_event_types, restricted=True),
    ]
    if problems:
        raise BadRequest("; ".join(problems), problems=problems)


def do_create_endpoint(
    *, session: Session, request: EndpointCreate, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the only time the secret is returned)."""
    event_types = public_types() if request.event_types is None else request.event_types
    check_subscription(
        event_types=event_types, restricted_event_types=request.restricted_event_types
    )
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=check_url(str(request.url), settings=settings),
        description=request.description,
        event_types=sorted(set(event_types)),
        restricted_event_types=sorted(set(request.restricted_event_types)),
        group_ids=None
        if request.group_ids is None
        else sorted({str(group) for group in request.group_ids}),
        secret_encrypted=seal(secret, key_file=settings.webhook_secret_key_file),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def do_update_endpoint(
    *, session: Session, endpoint: WebhookEndpoint, request: EndpointUpdate, settings: Settings
) -> WebhookEndpoint:
    changes = request.model_dump(exclude_unset=True)
    event_types = changes.get("event_types") or endpoint.event_types
    restricted = changes.get("restricted_event_types")
    check_subscription(
        event_types=event_types,
        restricted_event_types=endpoint.restricted_event_types
        if restricted is None
        else restricted,
    )
    if changes.get("url") is not None:
        endpoint.url = check_url(str(request.url), settings=settings)
    if changes.get("description") is not None:
        endpoint.description = changes["description"]
    if changes.get("event_types") is not None:
        endpoint.event_types = sorted(set(changes["event_types"]))
    if restricted is not None:
        endpoint.restricted_event_types = sorted(set(restricted))
    if "group_ids" in changes:
        groups = request.group_ids
        endpoint.group_ids = None if groups is None else sorted({str(g) for g in groups})
    if changes.get("enabled") is True and not endpoint.enabled:
        # A fresh start: the failure clock restarts, kept deliveries resume.
        endpoint.enabled = True
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif changes.get("enabled") is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_at = utcnow()
        endpoint.disabled_reason = "disabled by an admin"
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    return endpoint


def do_rotate_secret(*, session: Session, endpoint: WebhookEndpoint, settings: Settings) -> str:
    """Replace the secret; every attempt from now on is signed with the new one."""
    secret = new_secret()
    endpoint.secret_encrypted = seal(secret, key_file=settings.webhook_secret_key_file)
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    return secret


def do_delete_endpoint(*, session: Session, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery log; nothing more is sent to it."""
    session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id))
    session.delete(endpoint)


def list_endpoints(
    *, session: Session, cursor: str | None, limit: int
) -> tuple[list[WebhookEndpoint], str | None]:
    values = decode_cursor(cursor, 1)
    query = select(WebhookEndpoint)
    if values is not None:
        query = query.where(col(WebhookEndpoint.id) > _uuid(values[0]))
    query = query.order_by(col(WebhookEndpoint.id))
    return paginate(session, query, limit=limit, cursor_of=lambda row: [str(row.id)])


def list_deliveries(
    *,
    session: Session,
    endpoint: WebhookEndpoint,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookDelivery], str | None]:
    """The endpoint's delivery log, newest first."""
    values = decode_cursor(cursor, 1)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if values is not None:
        query = query.where(col(WebhookDelivery.id) < _uuid(values[0]))
    query = query.order_by(col(WebhookDelivery.id).desc())
    return paginate(session, query, limit=limit, cursor_of=lambda row: [str(row.id)])


def _uuid(value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise BadRequest("malformed cursor") from exc


# --- events in, deliveries out -------------------------------------------------------------


def _group_of(envelope: CloudEvent) -> UUID | None:
    group = envelope.data.get("group_id")
    return UUID(str(group)) if group else None


def grant_of(endpoint: WebhookEndpoint) -> Grant:
    return Grant.of(endpoint.event_types, endpoint.restricted_event_types, endpoint.group_ids)


# Delete on request names the person being erased for Knowflow's own services only: the
# copy kept and sent to endpoints leaves those names out (it is still a notice of erasure).
ERASED_NAMES = {UserErasureRequested.event_type: ("handle", "display_name")}


def store_event(session: Session, envelope: CloudEvent, _data: object) -> None:
    """Consumer handler: keep the event for replay and queue it for every covered endpoint.

    Its reads do not flush: a fetch's rows are written in one flush at its commit, not one
    per event (the consumer records each event id once, so a fetch never holds one twice).
    """
    with session.no_autoflush:
        if session.get(WebhookEvent, envelope.id) is not None:
            return
    if envelope.type in ERASED_NAMES:
        blanked = dict.fromkeys(ERASED_NAMES[envelope.type], "")
        envelope = envelope.model_copy(update={"data": {**envelope.data, **blanked}})
    group_id = _group_of(envelope)
    session.add(
        WebhookEvent(
            event_id=envelope.id,
            event_type=envelope.type,
            audience=envelope.audience,
            group_id=group_id,
            occurred_at=envelope.time,
            body=envelope.model_dump_json(),
        )
    )
    for endpoint in _enabled_endpoints(session):
        if grant_of(endpoint).covers(
            event_type=envelope.type, audience=envelope.audience, group_id=group_id
        ):
            session.add(
                WebhookDelivery(
                    endpoint_id=endpoint.id, event_id=envelope.id, event_type=envelope.type
                )
            )


_ENDPOINTS_READ = "webhook_endpoints_enabled"  # session.info: the endpoints read, if any


def _enabled_endpoints(session: Session) -> Sequence[WebhookEndpoint]:
    """The enabled endpoints, read once per session: a consumer's session is one
    transaction (a fetch, or one event), so its events go to the endpoints enabled when
    it began, as one read per event would have found them in SQLite's snapshot."""
    endpoints: Sequence[WebhookEndpoint] | None = session.info.get(_ENDPOINTS_READ)
    if endpoints is None:
        with session.no_autoflush:
            query = select(WebhookEndpoint).where(col(WebhookEndpoint.enabled))
            endpoints = session.info[_ENDPOINTS_READ] = session.exec(query).all()
    return endpoints


def do_replay(*, session: Session, endpoint: WebhookEndpoint, since: datetime) -> int:
    """Queue again every kept event since `since` that the endpoint's grant covers now."""
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; re-enable it before replaying")
    if since > utcnow():
        raise BadRequest("`since` is in the future")
    grant = grant_of(endpoint)
    events = session.exec(
        select(
            WebhookEvent.event_id,
            WebhookEvent.event_type,
            WebhookEvent.audience,
            WebhookEvent.group_id,
        )
        .where(col(WebhookEvent.occurred_at) >= since)
        .order_by(col(WebhookEvent.occurred_at))
    ).all()
    queued = 0
    now = utcnow()
    for event_id, event_type, audience, group_id in events:
        if grant.covers(event_type=event_type, audience=audience, group_id=group_id):
            session.add(
                WebhookDelivery(
                    id=new_id(),
                    endpoint_id=endpoint.id,
                    event_id=event_id,
                    event_type=event_type,
                    replay=True,
                    next_attempt_at=now,
                )
            )
            queued += 1
    return queued


# --- claiming and recording ------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A delivery leased to this sender, with what it needs to send without the database."""

    delivery_id: UUID
    lease: int
    endpoint_id: UUID
    url: str
    secret_encrypted: str
    event_id: UUID
    body: str
    attempt: int


def claim_due(
    *, engine: Engine, settings: Settings, now: datetime, limit: int = 200
) -> list[Claim]:
    """Lease due deliveries of enabled endpoints, at most the concurrency per endpoint.

    Deliveries in flight elsewhere (an unexpired lease) count against the endpoint's
    concurrency, so one slow endpoint holds only its own slots. A lease that expired (a
    sender died mid-send) makes the delivery due again.
    """
    lease_for = timedelta(seconds=settings.webhook_timeout_seconds + 30)
    with Session(engine, expire_on_commit=False) as session:
        in_flight = dict(
            session.exec(
                select(WebhookDelivery.endpoint_id, func.count())
                .where(
                    WebhookDelivery.status == "delivering",
                    col(WebhookDelivery.claimed_until) >= now,
                )
                .group_by(col(WebhookDelivery.endpoint_id))
            ).all()
        )
        due = session.exec(
            select(WebhookDelivery, WebhookEndpoint, WebhookEvent)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .join(WebhookEvent, col(WebhookEvent.event_id) == col(WebhookDelivery.event_id))
            .where(
                col(WebhookEndpoint.enabled),
                or_(
                    (col(WebhookDelivery.status) == "pending")
                    & (col(WebhookDelivery.next_attempt_at) <= now),
                    (col(WebhookDelivery.status) == "delivering")
                    & (col(WebhookDelivery.claimed_until) < now),
                ),
            )
            .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
            .limit(limit)
        ).all()
        claims: list[Claim] = []
        for delivery, endpoint, event in due:
            taken = in_flight.get(endpoint.id, 0)
            if taken >= settings.webhook_concurrency_per_endpoint:
                continue
            # Compare-and-set on the lease: of two senders, only one wins each row. (Values
            # are read first: the ORM update refreshes `delivery` in the session.)
            seen, attempt = delivery.lease, delivery.attempts + 1
            result = session.execute(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id) == delivery.id, col(WebhookDelivery.lease) == seen)
                .values(
                    status="delivering",
                    lease=seen + 1,
                    claimed_until=now + lease_for,
                    attempts=attempt,
                    last_attempt_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue
            in_flight[endpoint.id] = taken + 1
            claims.append(
                Claim(
                    delivery_id=delivery.id,
                    lease=seen + 1,
                    endpoint_id=endpoint.id,
                    url=endpoint.url,
                    secret_encrypted=endpoint.secret_encrypted,
                    event_id=event.event_id,
                    body=event.body,
                    attempt=attempt,
                )
            )
        session.commit()
    return claims


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status code (None: no answer) and why it failed, if it did."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(settings: Settings, attempt: int) -> float | None:
    """Seconds to wait after failed attempt number `attempt`; None once the schedule is spent."""
    schedule = settings.webhook_retry_schedule
    return schedule[attempt - 1] if attempt <= len(schedule) else None


def record_result(
    *, engine: Engine, claim: Claim, outcome: Outcome, settings: Settings, now: datetime
) -> None:
    """Record an attempt under its lease; fail or disable as the schedule says."""
    with Session(engine, expire_on_commit=False) as session:
        delivery = session.get(WebhookDelivery, claim.delivery_id)
        if delivery is None or delivery.lease != claim.lease:
            return  # deleted meanwhile, or re-claimed after our lease expired
        endpoint = session.get(WebhookEndpoint, claim.endpoint_id)
        delivery.last_status_code = outcome.status_code
        delivery.claimed_until = None
        if outcome.delivered:
            delivery.status = "delivered"
            delivery.delivered_at = now
            delivery.last_error = None
            if endpoint is not None:
                endpoint.last_success_at = now
                endpoint.failing_since = None
                session.add(endpoint)
        else:
            delivery.last_error = (outcome.error or "")[:ERROR_CHARS]
            delay = retry_delay(settings, delivery.attempts)
            if delay is None:
                delivery.status = "failed"
            else:
                delivery.status = "pending"
                delivery.next_attempt_at = now + timedelta(seconds=delay)
            if endpoint is not None:
                note_failure(session=session, endpoint=endpoint, settings=settings, now=now)
        session.add(delivery)
        session.commit()


def note_failure(
    *, session: Session, endpoint: WebhookEndpoint, settings: Settings, now: datetime
) -> None:
    """Start the failure clock, or disable the endpoint once it ran out (outbox event)."""
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif endpoint.enabled and now - endpoint.failing_since >= timedelta(
        seconds=settings.webhook_disable_after_seconds
    ):
        since = endpoint.failing_since
        reason = f"no successful delivery since {since.isoformat()}, failing throughout"
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = reason
        record_event(
            session,
            WebhookEndpointDisabled(
                endpoint_id=endpoint.id, url=endpoint.url, reason=reason, disabled_at=now
            ),
            source=SOURCE,
        )
    endpoint.updated_at = now
    session.add(endpoint)


def release_claims(*, engine: Engine, claims: Sequence[Claim]) -> None:
    """Make interrupted sends due again now (the attempt may have arrived: webhook-id dedupes)."""
    with Session(engine) as session:
        for claim in claims:
            session.execute(
                update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.id) == claim.delivery_id,
                    col(WebhookDelivery.lease) == claim.lease,
                    col(WebhookDelivery.status) == "delivering",
                )
                .values(status="pending", claimed_until=None, next_attempt_at=utcnow())
            )
        session.commit()


def prune(*, engine: Engine, settings: Settings, now: datetime) -> int:
    """Forget events past the retention, with their finished deliveries (bounded)."""
    horizon = now - timedelta(seconds=settings.webhook_retention_seconds)
    with Session(engine) as session:
        unfinished = select(WebhookDelivery.event_id).where(
            col(WebhookDelivery.status).in_(("pending", "delivering"))
        )
        old = list(
            session.exec(
                select(WebhookEvent.event_id)
                .where(
                    col(WebhookEvent.received_at) < horizon,
                    col(WebhookEvent.event_id).not_in(unfinished),
                )
                .limit(PRUNE_BATCH)
            ).all()
        )
        if not old:
            return 0
        session.execute(delete(WebhookDelivery).where(in_list(WebhookDelivery.event_id, old)))
        session.execute(delete(WebhookEvent).where(in_list(WebhookEvent.event_id, old)))
        session.commit()
    return len(old)
