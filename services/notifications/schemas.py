"""HTTP models of the notifications service (the inbox item is also what live streams send)."""

from datetime import datetime
from typing import Annotated
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from services.notifications.models import Notification, NotificationBase, NotifiedUser
from shared.events.contracts import DigestFrequency, NotificationChannel, NotificationKind


class ActorPublic(BaseModel):
    """Who caused the notification."""

    id: UUID
    handle: str
    display_name: str


class NotificationPublic(NotificationBase):
    """One inbox item: what happened, why it reached you, and the item it links to."""

    # Every field is always in the answer (the defaults are the table's): all required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # type: ignore[assignment]

    actor: ActorPublic | None
    read: bool


def notification_public(
    notification: Notification, actor: NotifiedUser | None = None
) -> NotificationPublic:
    """The public shape of a stored notification (`actor` from the people projection)."""
    return NotificationPublic.model_validate(
        {
            **notification.model_dump(),
            "actor": (
                ActorPublic(id=actor.user_id, handle=actor.handle, display_name=actor.display_name)
                if actor is not None
                else None
            ),
            "read": notification.read_at is not None,
        }
    )


# --- the inbox and preferences API (added by the inbox slice) ----------------------------


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None = None


class NotificationGroupPublic(BaseModel):
    """Notifications that belong together ("5 new answers on “…”"), newest first."""

    group_key: str
    kind: NotificationKind
    count: int
    unread_count: int
    title: str  # a summary when there are several
    url: str
    latest_at: datetime
    latest: NotificationPublic


class NotificationGroupPage(BaseModel):
    items: list[NotificationGroupPublic]
    next_cursor: str | None = None


class UnreadCount(BaseModel):
    unread: int


def _iso_text(value: object) -> object:
    """A time is ISO 8601 text: pydantic would also read a bare number as epoch seconds."""
    if not isinstance(value, str):
        raise ValueError("a time as ISO 8601 text with an offset, e.g. 2026-01-01T09:00:00Z")
    return value


class MarkAllRead(BaseModel):
    """Mark only what a page showed: up to `before`, of one `group_key`."""

    model_config = ConfigDict(extra="forbid")

    before: Annotated[AwareDatetime, BeforeValidator(_iso_text)] | None = None
    group_key: str | None = Field(default=None, max_length=300)


class Marked(BaseModel):
    marked: int


_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHours(BaseModel):
    """No e-mail from `start` until `end`, local time ("22:00" to "07:00")."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(pattern=_CLOCK, examples=["22:00"])
    end: str = Field(pattern=_CLOCK, examples=["07:00"])


def _check_timezone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)") from exc
    return name


class DigestSchedule(BaseModel):
    frequency: DigestFrequency
    hour: int = Field(ge=0, le=23, description="Local hour in `timezone`.")
    timezone: str = Field(description="IANA time zone name.", examples=["Europe/Berlin"])


class DigestSchedulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frequency: DigestFrequency | None = None
    hour: int | None = Field(default=None, ge=0, le=23)
    timezone: str | None = Field(default=None, max_length=64)

    _valid_timezone = field_validator("timezone")(_check_timezone)


class PreferencesPublic(BaseModel):
    channels: dict[NotificationKind, NotificationChannel]
    digest: DigestSchedule
    quiet_hours: QuietHours | None
    version: int


class PreferencesPatch(BaseModel):
    """Only what is named changes; `quiet_hours: null` turns quiet hours off."""

    model_config = ConfigDict(extra="forbid")

    channels: dict[NotificationKind, NotificationChannel] | None = None
    digest: DigestSchedulePatch | None = None
    quiet_hours: QuietHours | None = None
