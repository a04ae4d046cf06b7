"""The sender: claims due e-mails with a lease, sends each, records the outcome at once.

Every replica runs it. A claim is a conditional UPDATE (pending and due, or a lease that
ran out) committed before anything is sent, so two replicas never hold the same row; an
outcome is recorded only by the holder of the lease (`claimed_until` unchanged). `sent`
is committed right after the server accepted the message. What stays open is the moment
between the server's acceptance and that commit: a crash exactly there sends that one
message again when the lease runs out (same Message-ID, so a receiver may drop it).
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Literal
from uuid import UUID

from fastapi import FastAPI
from sqlalchemy import Engine, and_, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from services.notifications.mail.account import (
    ACCOUNT_KINDS,
    build_account_message,
    forget_secret,
)
from services.notifications.mail.models import MailedDigestItem
from services.notifications.mail.rendering import (
    build_message,
    digest_sections,
    message_id_for,
    render,
)
from services.notifications.mail.transport import (
    Connection,
    MailError,
    PermanentMailError,
    TemporaryMailError,
    Transport,
    transport_for,
)
from services.notifications.models import MailDelivery, Notification, NotifiedUser
from services.notifications.service import can_see, channel_for, mail_not_before, preferences_of
from shared.db import in_list
from shared.events.contracts import DigestReadySection
from shared.ids import utcnow
from shared.schedule import run_every
from shared.settings import Settings
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

Outcome = Literal["sent", "retry", "failed", "cancelled"]


@dataclass
class SendReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(col(MailDelivery.status) == "pending", col(MailDelivery.not_before) <= now),
        and_(col(MailDelivery.status) == "sending", col(MailDelivery.claimed_until) < now),
    )


def claim_due(engine: Engine, *, now: datetime, lease_until: datetime, limit: int) -> list[UUID]:
    """Claim up to `limit` due e-mails until `lease_until`; the ids this sender now holds."""
    with Session(engine) as session:
        candidates = session.exec(
            select(MailDelivery.notification_id)
            .where(_due(now))
            # One order for every replica, so their row locks never cross.
            .order_by(col(MailDelivery.notification_id))
            .limit(limit)
        ).all()
    return claim(engine, list(candidates), now=now, lease_until=lease_until)


def claim(engine: Engine, ids: list[UUID], *, now: datetime, lease_until: datetime) -> list[UUID]:
    """Claim those of `ids` still due: another replica may have claimed some since we read them."""
    claimed = []
    with Session(engine) as session:
        for notification_id in ids:
            result = session.execute(
                update(MailDelivery)
                .where(col(MailDelivery.notification_id) == notification_id, _due(now))
                .values(
                    status="sending",
                    claimed_until=lease_until,
                    attempts=col(MailDelivery.attempts) + 1,
                )
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(notification_id)
        session.commit()
    return claimed


@dataclass
class Prepared:
    """What one claimed e-mail turned into before anything is sent."""

    delivery: MailDelivery
    message: EmailMessage | None = None
    digest_items: list[UUID] = field(default_factory=list)
    outcome: Outcome | None = None  # decided without sending (cancelled, failed)
    error: str | None = None


def prepare(
    session: Session, settings: Settings, delivery: MailDelivery, now: datetime
) -> Prepared:
    """Re-check, at send time, that the person still may and wants to get it; render it."""
    if delivery.kind in ACCOUNT_KINDS:
        message, why = build_account_message(session, settings, delivery, now)
        if message is None:
            return Prepared(delivery, outcome="cancelled", error=why)
        return Prepared(delivery, message=message)
    notification = session.get(Notification, delivery.notification_id)
    if notification is None:
        return Prepared(delivery, outcome="cancelled", error="the notification is gone")
    if not can_see(session=session, user_id=delivery.user_id, group_id=notification.group_id):
        return Prepared(delivery, outcome="cancelled", error="may no longer see the item")
    if channel_for(preferences_of(session=session, user_id=delivery.user_id), delivery.kind) != (
        "email"
    ):
        return Prepared(delivery, outcome="cancelled", error="no longer wants this by e-mail")
    recipient = session.get(NotifiedUser, delivery.user_id)
    if recipient is None or not recipient.email:
        return Prepared(delivery, outcome="failed", error="no e-mail address")
    sections: list[DigestReadySection] | None = None
    fresh: list[UUID] = []
    if delivery.kind == "digest":
        sections, fresh = _unsent_digest_sections(session, delivery.user_id, notification)
        if not fresh:
            return Prepared(delivery, outcome="cancelled", error="nothing new to send")
    rendered = render(settings, notification, recipient, sections=sections)
    message = build_message(
        settings, notification=notification, recipient=recipient, rendered=rendered, now=now
    )
    return Prepared(delivery, message=message, digest_items=fresh)


def _unsent_digest_sections(
    session: Session, user_id: UUID, notification: Notification
) -> tuple[list[DigestReadySection], list[UUID]]:
    """The digest without items an earlier digest e-mail already carried to this person."""
    sections = digest_sections(notification.details)
    wanted = {item.content_id for section in sections for item in section.items}
    already = set(
        session.exec(
            select(MailedDigestItem.content_id).where(
                MailedDigestItem.user_id == user_id,
                in_list(MailedDigestItem.content_id, wanted),
            )
        ).all()
    )
    kept: list[DigestReadySection] = []
    fresh: list[UUID] = []
    for section in sections:
        items = []
        for item in section.items:
            # An item in two sections (a person and a tag) is shown once.
            if item.content_id not in already and item.content_id not in fresh:
                fresh.append(item.content_id)
                items.append(item)
        if items:
            kept.append(section.model_copy(update={"items": items}))
    return kept, fresh


def retry_at(settings: Settings, attempts: int, now: datetime) -> datetime:
    """Exponential back-off: the first retry after `mail_backoff_seconds`, doubling."""
    delay = settings.mail_backoff_seconds * 2 ** max(attempts - 1, 0)
    return now + timedelta(seconds=min(delay, settings.mail_backoff_max_seconds))


def record_outcome(
    engine: Engine,
    settings: Settings,
    prepared: Prepared,
    outcome: Outcome,
    error: str | None,
    lease_until: datetime,
    now: datetime,
) -> bool:
    """Record what happened, in its own commit, only while this sender holds the lease."""
    delivery = prepared.delivery
    values: dict[str, object] = {"claimed_until": None, "last_error": error}
    if outcome == "sent":
        values |= {
            "status": "sent",
            "sent_at": utcnow(),  # when the server accepted it, not when the round began
            "message_id": message_id_for(delivery.notification_id),
        }
    elif outcome == "retry" and delivery.attempts < settings.mail_max_attempts:
        if delivery.kind in ACCOUNT_KINDS:  # the person is waiting: no quiet hours
            values |= {
                "status": "pending",
                "not_before": retry_at(settings, delivery.attempts, now),
            }
        else:
            with Session(engine) as session:
                preference = preferences_of(session=session, user_id=delivery.user_id)
            # A retry waits out the person's quiet hours too.
            values |= {
                "status": "pending",
                "not_before": mail_not_before(
                    preference, retry_at(settings, delivery.attempts, now)
                ),
            }
    elif outcome == "retry":
        values |= {
            "status": "failed",
            "last_error": f"gave up after {delivery.attempts} attempts: {error}",
        }
    else:
        values |= {"status": "failed" if outcome == "failed" else "cancelled"}
    with Session(engine) as session:
        result = session.execute(
            update(MailDelivery)
            .where(
                col(MailDelivery.notification_id) == delivery.notification_id,
                col(MailDelivery.status) == "sending",
                col(MailDelivery.claimed_until) == lease_until,
            )
            .values(**values)
        )
        held = result.rowcount == 1  # type: ignore[attr-defined]
        if held and delivery.kind in ACCOUNT_KINDS and values["status"] != "pending":
            forget_secret(session, delivery.notification_id)
        if held and outcome == "sent":
            for content_id in prepared.digest_items:
                if session.get(MailedDigestItem, (delivery.user_id, content_id)) is None:
                    session.add(
                        MailedDigestItem(
                            user_id=delivery.user_id,
                            content_id=content_id,
                            notification_id=delivery.notification_id,
                            sent_at=now,
                        )
                    )
        session.commit()
    if not held:
        log.warning("lost the claim on e-mail %s before recording it", delivery.notification_id)
    return held


def send_due(
    engine: Engine, settings: Settings, transport: Transport, *, now: datetime | None = None
) -> SendReport:
    """One round: claim due e-mails, send them over one connection, record each at once."""
    now = now or utcnow()
    lease_until = now + timedelta(seconds=settings.mail_claim_seconds)
    claimed = claim_due(engine, now=now, lease_until=lease_until, limit=settings.mail_batch_size)
    report = SendReport(claimed=len(claimed))
    if not claimed:
        return report
    with Session(engine, expire_on_commit=False) as session:
        deliveries = session.exec(
            select(MailDelivery).where(in_list(MailDelivery.notification_id, claimed))
        ).all()
        batch = [prepare(session, settings, delivery, now) for delivery in deliveries]
    to_send = [prepared for prepared in batch if prepared.outcome is None]
    for prepared in batch:
        if prepared.outcome is not None:
            record_outcome(
                engine, settings, prepared, prepared.outcome, prepared.error, lease_until, now
            )
            report.count(prepared.outcome)
    if not to_send:
        return report
    unsent = list(to_send)
    try:
        with transport.connect() as connection:
            while unsent:
                prepared = unsent.pop(0)
                outcome, error = _send_one(connection, prepared)
                record_outcome(engine, settings, prepared, outcome, error, lease_until, now)
                report.count(outcome)
                if outcome == "retry":
                    # The server is in trouble: leave the rest for the next round, untried.
                    for rest in unsent:
                        _release(engine, rest, lease_until)
                    return report
    except MailError as exc:  # could not connect: each e-mail of the batch was attempted
        for prepared in unsent:
            record_outcome(engine, settings, prepared, "retry", str(exc), lease_until, now)
            report.count("retry")
    return report


def _release(engine: Engine, prepared: Prepared, lease_until: datetime) -> None:
    """Give a claimed e-mail back as it was, not counting an attempt it never had."""
    with Session(engine) as session:
        session.execute(
            update(MailDelivery)
            .where(
                col(MailDelivery.notification_id) == prepared.delivery.notification_id,
                col(MailDelivery.status) == "sending",
                col(MailDelivery.claimed_until) == lease_until,
            )
            .values(status="pending", claimed_until=None, attempts=col(MailDelivery.attempts) - 1)
        )
        session.commit()


def _send_one(connection: Connection, prepared: Prepared) -> tuple[Outcome, str | None]:
    assert prepared.message is not None
    try:
        connection.send(prepared.message)
    except PermanentMailError as exc:
        return "failed", str(exc)
    except TemporaryMailError as exc:
        return "retry", str(exc)
    return "sent", None


async def run_sender(engine: Engine, settings: Settings, transport: Transport) -> None:
    await run_every(
        settings.mail_send_interval_seconds,
        lambda: send_due(engine, settings, transport),
        name="sending e-mail",
    )


async def start(app: FastAPI) -> None:
    """Start the sender loop (every replica runs one; the leases keep them apart)."""
    settings: Settings = app.state.settings
    app.state.mail_transport = transport_for(settings)
    app.state.mail_sender = None
    if settings.mail_sender_enabled:
        app.state.mail_sender = asyncio.create_task(
            run_sender(app.state.engine, settings, app.state.mail_transport), name="mail-sender"
        )


async def stop(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "mail_sender", None)
    if task is not None:
        await stop_tasks([task])
