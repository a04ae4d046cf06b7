"""A person's notification preferences: read with defaults filled in, changed in part."""

from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from services.notifications.models import NotificationPreference
from services.notifications.schemas import (
    DigestSchedule,
    PreferencesPatch,
    PreferencesPublic,
    QuietHours,
)
from services.notifications.service import SOURCE, channel_for
from shared.events.contracts import NOTIFICATION_KINDS, NotificationPreferencesUpdated
from shared.events.outbox import record_event
from shared.ids import utcnow


def preferences_public(preference: NotificationPreference) -> PreferencesPublic:
    """Every kind's channel (defaults filled in), the digest schedule, quiet hours."""
    quiet = (
        QuietHours(start=preference.quiet_start, end=preference.quiet_end)
        if preference.quiet_start and preference.quiet_end
        else None
    )
    return PreferencesPublic(
        channels={kind: channel_for(preference, kind) for kind in NOTIFICATION_KINDS},
        digest=DigestSchedule(
            frequency=preference.digest_frequency,
            hour=preference.digest_hour,
            timezone=preference.timezone,
        ),
        quiet_hours=quiet,
        version=preference.version,
    )


def _locked_row(session: Session, user_id: UUID) -> NotificationPreference:
    """The person's row, created if missing, locked for this transaction (race-free)."""
    table = cast(Table, NotificationPreference.__table__)  # type: ignore[attr-defined]
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    defaults = NotificationPreference(user_id=user_id).model_dump()
    session.execute(insert(table).values(**defaults).on_conflict_do_nothing())
    query = select(NotificationPreference).where(col(NotificationPreference.user_id) == user_id)
    return session.exec(query.with_for_update().execution_options(populate_existing=True)).one()


def do_update_preferences(
    *, session: Session, user_id: UUID, patch: PreferencesPatch
) -> NotificationPreference:
    """Apply what the patch names; bump `version`; announce a changed digest schedule."""
    row = _locked_row(session, user_id)
    schedule_before = (row.digest_frequency, row.digest_hour, row.timezone)
    changes: dict[str, Any] = {}
    if patch.channels:
        changes["channels"] = {**row.channels, **patch.channels}
    if patch.digest is not None:
        digest = patch.digest
        changes["digest_frequency"] = digest.frequency or row.digest_frequency
        changes["digest_hour"] = digest.hour if digest.hour is not None else row.digest_hour
        changes["timezone"] = digest.timezone or row.timezone
    if "quiet_hours" in patch.model_fields_set:
        quiet = patch.quiet_hours
        changes["quiet_start"] = quiet.start if quiet else None
        changes["quiet_end"] = quiet.end if quiet else None
    if not changes:
        return row
    for name, value in changes.items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at = utcnow()
    session.add(row)
    if (row.digest_frequency, row.digest_hour, row.timezone) != schedule_before:
        record_event(
            session,
            NotificationPreferencesUpdated(
                user_id=user_id,
                digest_frequency=row.digest_frequency,
                digest_hour=row.digest_hour,
                timezone=row.timezone,
                version=row.version,
            ),
            source=SOURCE,
        )
    return row
