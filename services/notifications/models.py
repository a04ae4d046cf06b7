"""The notifications service's tables: inboxes, preferences, e-mails to send, and the
projections (people, content, groups, memberships) built from other services' events."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import JSON, AutoString, Column, Field, SQLModel, col

from shared.events.contracts import NotificationKind
from shared.ids import new_id, utcnow


class NotificationBase(SQLModel):
    """What a notification's row and its HTTP shape (`NotificationPublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)  # UUIDv7: ordered by time
    kind: NotificationKind = Field(sa_type=AutoString)
    title: str  # what happened: "Ada mentioned you in “Rotating keys”"
    reason: str  # why it reached you: "you were mentioned"
    url: str  # the item, as a public API path
    item_kind: str | None = None  # ContentKind of the item the url opens
    item_id: UUID | None = None
    thread_id: UUID | None = None
    group_key: str
    group_id: UUID | None = Field(default=None, index=True)  # checked when the inbox is read
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    read_at: datetime | None = None


class Notification(NotificationBase, table=True):
    """One thing a person should know, in their inbox; read once `read_at` is set.

    `dedupe_key` makes a notification happen once per person, whatever replays or edits
    follow (`mention:<item>`, `routed:<question>`, `answer:<answer>` ...); `group_key`
    gathers the ones shown together ("5 new answers on …": `answer:<question>`).
    """

    __tablename__ = "notifications_notification"
    __table_args__ = (UniqueConstraint("user_id", "dedupe_key", name="uq_notification_once"),)

    user_id: UUID = Field(index=True)
    dedupe_key: str
    actor_id: UUID | None = None  # who did it
    source_event_id: UUID | None = None  # the event that caused it


class NotificationPreference(SQLModel, table=True):
    """A person's choices; a person without a row has the defaults (service.DEFAULT_CHANNELS)."""

    __tablename__ = "notifications_preference"

    user_id: UUID = Field(primary_key=True)
    # Only what differs from the defaults: {"reply": "email", "answer": "off"}.
    channels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    digest_frequency: str = "weekly"  # DigestFrequency
    digest_hour: int = 9  # local hour in `timezone`
    timezone: str = "UTC"  # IANA zone name
    quiet_start: str | None = None  # "22:00" local; no e-mail from then ...
    quiet_end: str | None = None  # ... until "07:00" local (deferred, not dropped)
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class MailDelivery(SQLModel, table=True):
    """One e-mail to send, keyed by the notification it tells of: at most one per notification.

    `status`: pending → sending (claimed until `claimed_until`) → sent | failed (permanent).
    The address is looked up when sending, so a changed address is used and a person who
    may no longer see the item gets nothing.
    """

    __tablename__ = "notifications_mail"

    notification_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(index=True)
    kind: str
    status: str = Field(default="pending", index=True)
    not_before: datetime = Field(default_factory=utcnow, index=True)  # quiet hours defer it
    attempts: int = 0
    claimed_until: datetime | None = None
    last_error: str | None = None
    message_id: str | None = None  # the Message-ID header, stable across retries
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


# --- projections of other services' facts ------------------------------------------------


class NotifiedUser(SQLModel, table=True):
    """A person as identity announced them; `email` from the restricted contact event."""

    __tablename__ = "notifications_user"

    user_id: UUID = Field(primary_key=True)
    handle: str = Field(index=True)
    display_name: str = ""
    email: str | None = None
    email_changed_at: datetime | None = None
    changed_at: datetime = Field(default_factory=utcnow)


class NotifiedContent(SQLModel, table=True):
    """Who wrote an item and where it lives, so a reply or an answer finds whom to tell."""

    __tablename__ = "notifications_content"

    content_id: UUID = Field(primary_key=True)
    kind: str  # ContentKind
    author_id: UUID = Field(index=True)
    group_id: UUID | None = None
    visibility: str = "public"
    title: str | None = None
    parent_id: UUID | None = None
    thread_id: UUID | None = None
    version: int = 0
    deleted: bool = False


class NotifiedGroup(SQLModel, table=True):
    __tablename__ = "notifications_group"

    group_id: UUID = Field(primary_key=True)
    visibility: str  # GroupVisibility
    name: str = ""
    slug: str = ""


class NotifiedMembership(SQLModel, table=True):
    """A membership as identity numbered it (see shared/projections.py); `active` false once left."""

    __tablename__ = "notifications_membership"

    group_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
    role: str = "member"
    active: bool = True
    version: int = 0
    changed_at: datetime = Field(default_factory=utcnow)


TABLES: list[type[SQLModel]] = [
    Notification,
    NotificationPreference,
    MailDelivery,
    NotifiedUser,
    NotifiedContent,
    NotifiedGroup,
    NotifiedMembership,
]


# --- read paths ---------------------------------------------------------------------------
# A woken live stream and the inbox list read "this person's rows after/before this id"
# (UUIDv7, time-ordered): one index range, not a sort. The unread count and filter read
# (user_id, read_at); the grouped view orders a person's rows by time.
Index("ix_notifications_notification_user_id_id", col(Notification.user_id), col(Notification.id))
Index("ix_notification_user_read", col(Notification.user_id), col(Notification.read_at))
Index("ix_notification_user_created", col(Notification.user_id), col(Notification.created_at))
