"""Delete on request (GDPR erasure) and export of one's own data, notifications' part.

Removed on erasure: the person's e-mail address, their inbox, their preferences, every
e-mail waiting or sent to them (and what their mailed digests carried), and the events kept
for webhook replay that name them (their registration, contact, profile, mentions). Others' inbox items that name them as who did something
("Ada replied to your post") name the former member instead.
"""

import re
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from services.notifications import projections
from services.notifications.inbox import visible
from services.notifications.mail.models import MailedDigestItem
from services.notifications.models import (
    MailDelivery,
    Notification,
    NotificationPreference,
    NotifiedUser,
)
from services.notifications.preferences import preferences_public
from services.notifications.service import preferences_of
from services.notifications.webhooks.models import WebhookDelivery, WebhookEvent
from shared.db import in_list
from shared.events.contracts import UserErasureRequested, UserProfileUpdated
from shared.ids import utcnow


def _count(session: Session, model: Any, user_id: UUID) -> int:
    return int(
        session.exec(select(func.count()).select_from(model).where(model.user_id == user_id)).one()
    )


def _rename_actor(session: Session, data: UserErasureRequested) -> int:
    """Others' items whose title begins with the person's name: the former member's instead."""
    names = [name for name in (data.display_name, f"@{data.handle}") if name.strip("@")]
    count = 0
    for row in session.exec(select(Notification).where(Notification.actor_id == data.user_id)):
        for name in names:
            if row.title.startswith(name):
                row.title = data.replacement_display_name + row.title[len(name) :]
                session.add(row)
                count += 1
                break
    return count


def _names(data: UserErasureRequested, email: str | None) -> re.Pattern[str] | None:
    """How the person is written in a stored event: handle, mention, name, address."""
    handle, name = re.escape(data.handle), re.escape(data.display_name)
    forms = (
        [
            rf'"handle":"{handle}"',
            rf'"mentions":\[[^\]]*"{handle}"',
            rf"(?<![\w@])@{handle}(?!\w)",
        ]
        if data.handle
        else []
    )
    # A name is written in titles too ("Ada Lovelace replied…"), so anywhere as whole words.
    forms += [rf"(?<!\w){name}(?!\w)"] if data.display_name else []
    forms += [re.escape(email)] if email else []
    return re.compile("|".join(forms), re.IGNORECASE) if forms else None


def _forget_webhook_events(session: Session, data: UserErasureRequested, email: str | None) -> int:
    """Events kept for webhook replay that name the person, with their deliveries."""
    pattern = _names(data, email)
    if pattern is None:
        return 0
    needles = [text for text in (data.handle, data.display_name, email) if text]
    candidates = session.exec(
        select(WebhookEvent.event_id, WebhookEvent.body).where(
            or_(*(col(WebhookEvent.body).ilike(f"%{needle}%") for needle in needles))
        )
    ).all()
    naming = [event_id for event_id, body in candidates if pattern.search(body)]
    if naming:
        session.execute(delete(WebhookDelivery).where(in_list(WebhookDelivery.event_id, naming)))
        session.execute(delete(WebhookEvent).where(in_list(WebhookEvent.event_id, naming)))
    return len(naming)


def erase(session: Session, data: UserErasureRequested) -> dict[str, int]:
    """Remove the person's address, inbox, preferences and mail; name them as the tombstone."""
    removed = {
        "inbox_items": _count(session, Notification, data.user_id),
        "mails": _count(session, MailDelivery, data.user_id),
        "preferences": _count(session, NotificationPreference, data.user_id),
        "digest_items_mailed": _count(session, MailedDigestItem, data.user_id),
    }
    for model in (MailDelivery, Notification, NotificationPreference, MailedDigestItem):
        session.execute(delete(model).where(col(model.user_id) == data.user_id))
    person = session.get(NotifiedUser, data.user_id)
    removed["webhook_events"] = _forget_webhook_events(
        session, data, person.email if person else None
    )
    if person is not None:
        removed["email"] = 1 if person.email else 0
        # Stamped with the erasure, so a contact event from before it cannot bring it back.
        person.email, person.email_changed_at = None, data.requested_at
        session.add(person)
    projections.do_project_user(
        session=session,
        data=UserProfileUpdated(
            user_id=data.user_id,
            handle=data.replacement_handle,
            display_name=data.replacement_display_name,
            bio="",
            skills=[],
        ),
        at=data.requested_at,
    )
    removed["named_in_others_inbox"] = _rename_actor(session, data)
    return removed


def export(session: Session, user_id: UUID) -> dict[str, Any]:
    """The person's address on file, preferences and the inbox items they may still see."""
    person = session.get(NotifiedUser, user_id)
    inbox = session.exec(
        select(Notification)
        .where(col(Notification.user_id) == user_id, visible())
        .order_by(col(Notification.id))
    ).all()
    return {
        "exported_at": utcnow().isoformat(),
        "email": person.email if person else None,
        "preferences": preferences_public(
            preferences_of(session=session, user_id=user_id)
        ).model_dump(mode="json"),
        "inbox": [row.model_dump(mode="json") for row in inbox],
    }
