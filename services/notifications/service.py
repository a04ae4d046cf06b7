"""The rules every notification follows: who may get it, once, through which channel.

`do_notify` is the one way a notification comes to be: it checks that the person may see
the item, applies their preference for the kind, stores the notification once per
`dedupe_key`, records `NotificationCreated` (outbox) and, if they chose e-mail, a
`MailDelivery` in the same transaction. Never commits (the caller's transaction does).
"""

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from services.notifications.models import (
    MailDelivery,
    Notification,
    NotificationPreference,
    NotifiedMembership,
)
from shared.events.contracts import NotificationChannel, NotificationCreated, NotificationKind
from shared.events.outbox import record_event
from shared.ids import new_id, utcnow

SOURCE = "/knowflow/notifications"

# Mentions and questions routed to you come by e-mail too; everything else to the inbox only.
DEFAULT_CHANNELS: Mapping[str, NotificationChannel] = {
    "mention": "email",
    "reply": "inbox",
    "answer": "inbox",
    "comment": "inbox",
    "accepted": "inbox",
    "routed": "email",
    "escalated": "inbox",
    "group_added": "inbox",
    "role_changed": "inbox",
    "digest": "inbox",
}


def preferences_of(*, session: Session, user_id: UUID) -> NotificationPreference:
    """The person's stored preferences, or the defaults (not stored)."""
    return session.get(NotificationPreference, user_id) or NotificationPreference(user_id=user_id)


def channel_for(preference: NotificationPreference, kind: str) -> NotificationChannel:
    chosen = preference.channels.get(kind)
    return cast(NotificationChannel, chosen) if chosen else DEFAULT_CHANNELS[kind]


def can_see(*, session: Session, user_id: UUID, group_id: UUID | None) -> bool:
    """Whether the person may see an item of `group_id` (None: public) right now."""
    if group_id is None:
        return True
    membership = session.get(NotifiedMembership, (group_id, user_id))
    return membership is not None and membership.active


def mail_not_before(preference: NotificationPreference, now: datetime) -> datetime:
    """When an e-mail may go out: now, or the end of the person's quiet hours.

    Quiet hours are local times in the person's zone; `22:00`-`07:00` runs across
    midnight. The end is found on the local calendar, so a DST change moves it correctly.
    """
    if not preference.quiet_start or not preference.quiet_end:
        return now
    try:
        zone = ZoneInfo(preference.timezone)
        start = time.fromisoformat(preference.quiet_start)
        end = time.fromisoformat(preference.quiet_end)
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return now  # a preference we cannot read never holds mail back
    if start == end:
        return now
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        quiet = start <= clock < end
        end_day = local.date()
    else:  # across midnight: quiet from `start` today, or until `end` this morning
        quiet = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not quiet:
        return now
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def do_notify(
    *,
    session: Session,
    user_id: UUID,
    kind: NotificationKind,
    dedupe_key: str,
    group_key: str,
    title: str,
    reason: str,
    url: str,
    item_kind: str | None = None,
    item_id: UUID | None = None,
    thread_id: UUID | None = None,
    actor_id: UUID | None = None,
    group_id: UUID | None = None,
    details: dict[str, Any] | None = None,
    source_event_id: UUID | None = None,
    now: datetime | None = None,
) -> Notification | None:
    """Tell `user_id` once per `dedupe_key`; None if they may not see it, turned it off, or
    were already told. Nobody is told of what they did themselves."""
    if actor_id is not None and actor_id == user_id:
        return None
    if not can_see(session=session, user_id=user_id, group_id=group_id):
        return None
    preference = preferences_of(session=session, user_id=user_id)
    channel = channel_for(preference, kind)
    if channel == "off":
        return None
    created = now or utcnow()
    notification = Notification(
        id=new_id(),
        user_id=user_id,
        kind=kind,
        dedupe_key=dedupe_key,
        group_key=group_key,
        title=title,
        reason=reason,
        url=url,
        item_kind=item_kind,
        item_id=item_id,
        thread_id=thread_id,
        actor_id=actor_id,
        group_id=group_id,
        details=details or {},
        source_event_id=source_event_id,
        created_at=created,
    )
    if not _insert_once(session, notification):
        return None
    record_event(
        session,
        NotificationCreated(
            notification_id=notification.id,
            user_id=user_id,
            kind=kind,
            title=title,
            url=url,
            item_id=item_id,
            group_id=group_id,
            created_at=created,
        ),
        source=SOURCE,
    )
    if channel == "email":
        session.add(
            MailDelivery(
                notification_id=notification.id,
                user_id=user_id,
                kind=kind,
                not_before=mail_not_before(preference, created),
                created_at=created,
            )
        )
    return notification


def _insert_once(session: Session, notification: Notification) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on (user_id, dedupe_key): race-free across replicas."""
    table = cast(Table, Notification.__table__)  # type: ignore[attr-defined]
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    values = notification.model_dump()
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
        .returning(table.c.id)
    )
    return session.execute(statement).first() is not None


def unread_count(*, session: Session, user_id: UUID) -> int:
    """Unread notifications the person may still see (read-time permission check)."""
    from services.notifications.inbox import unread_count as count_visible_unread

    return count_visible_unread(session=session, user_id=user_id)
