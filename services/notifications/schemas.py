"""HTTP models of the notifications service (the inbox item is also what live streams send)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from services.notifications.models import Notification, NotifiedUser
from shared.events.contracts import NotificationKind


class ActorPublic(BaseModel):
    """Who caused the notification."""

    id: UUID
    handle: str
    display_name: str


class NotificationPublic(BaseModel):
    """One inbox item: what happened, why it reached you, and the item it links to."""

    id: UUID
    kind: NotificationKind
    title: str
    reason: str
    url: str
    item_kind: str | None
    item_id: UUID | None
    thread_id: UUID | None
    group_key: str
    group_id: UUID | None
    actor: ActorPublic | None
    details: dict[str, Any]
    created_at: datetime
    read: bool
    read_at: datetime | None


def notification_public(
    notification: Notification, actor: NotifiedUser | None = None
) -> NotificationPublic:
    """The public shape of a stored notification (`actor` from the people projection)."""
    return NotificationPublic(
        id=notification.id,
        kind=notification.kind,
        title=notification.title,
        reason=notification.reason,
        url=notification.url,
        item_kind=notification.item_kind,
        item_id=notification.item_id,
        thread_id=notification.thread_id,
        group_key=notification.group_key,
        group_id=notification.group_id,
        actor=(
            ActorPublic(id=actor.user_id, handle=actor.handle, display_name=actor.display_name)
            if actor is not None
            else None
        ),
        details=notification.details,
        created_at=notification.created_at,
        read=notification.read_at is not None,
        read_at=notification.read_at,
    )
