"""What notifications knows of other services' facts: people, groups, memberships, content.

Content is ordered by its `version` and a deletion is final; memberships by identity's
version (shared/projections.py); names and e-mail addresses by the time their owner stamped
them. Functions here add rows to the caller's session and never commit.
"""

from datetime import UTC, datetime
from uuid import UUID

from sqlmodel import Session

from services.notifications.models import (
    NotifiedContent,
    NotifiedGroup,
    NotifiedMembership,
    NotifiedUser,
)
from shared.events.contracts import (
    ContentEvent,
    ContentSnapshot,
    GroupCreated,
    GroupEvent,
    MembershipEvent,
    UserContactUpdated,
    UserProfileUpdated,
    UserRegistered,
)
from shared.projections import do_apply_fact

# A person known only by their contact event so far: any registration outranks it.
_NOT_YET_REGISTERED = datetime(1970, 1, 1, tzinfo=UTC)


def normalise_handle(handle: str) -> str:
    return handle.strip().lower().removeprefix("@")


def do_project_user(
    *, session: Session, data: UserRegistered | UserProfileUpdated, at: datetime
) -> bool:
    """Keep a person's handle and display name (the later event wins)."""
    row = session.get(NotifiedUser, data.user_id)
    if row is None:
        row = NotifiedUser(user_id=data.user_id, handle="", changed_at=_NOT_YET_REGISTERED)
    elif row.changed_at > at:
        return False
    row.handle = normalise_handle(data.handle)
    row.display_name = data.display_name
    row.changed_at = at
    session.add(row)
    return True


def do_project_contact(*, session: Session, data: UserContactUpdated) -> bool:
    """Keep a person's e-mail address (the latest `changed_at` wins), even before registration."""
    changed = data.changed_at
    row = session.get(NotifiedUser, data.user_id)
    if row is None:
        row = NotifiedUser(user_id=data.user_id, handle="", changed_at=_NOT_YET_REGISTERED)
    elif row.email_changed_at is not None and row.email_changed_at > changed:
        return False
    row.email = data.email
    row.email_changed_at = changed
    session.add(row)
    return True


def _project_group(session: Session, data: GroupEvent, *, name: str = "", slug: str = "") -> None:
    row = session.get(NotifiedGroup, data.group_id)
    if row is None:
        row = NotifiedGroup(group_id=data.group_id, visibility=data.visibility)
    # Private is sticky: no event may quietly make a private group's items public here.
    if data.visibility == "private":
        row.visibility = "private"
    row.name = name or row.name
    row.slug = slug or row.slug
    session.add(row)


def do_project_group(*, session: Session, data: GroupCreated) -> None:
    _project_group(session, data, name=data.name, slug=data.slug)


def do_project_membership(
    *,
    session: Session,
    data: MembershipEvent,
    active: bool,
    role: str | None,
    at: datetime,
) -> bool:
    """Apply a membership fact unless identity already numbered a newer one; True if applied."""
    _project_group(session, data)
    session.flush()
    stored = session.get(NotifiedMembership, (data.group_id, data.user_id))
    applied = do_apply_fact(
        session=session,
        model=NotifiedMembership,
        keys=["group_id", "user_id"],
        values={
            "group_id": data.group_id,
            "user_id": data.user_id,
            "role": role or (stored.role if stored is not None else "member"),
            "active": active,
            "version": data.version,
            "changed_at": at,
        },
    )
    if stored is not None:
        # The fact was written in SQL: later reads in this transaction must not see the old row.
        session.expire(stored)
    return applied


def do_project_content(*, session: Session, data: ContentSnapshot) -> bool:
    """Store a snapshot unless it is stale, a replay, or deleted; True if it was newer."""
    row = session.get(NotifiedContent, data.content_id)
    if row is not None and (row.deleted or data.version <= row.version):
        return False
    if row is None:
        row = NotifiedContent(content_id=data.content_id, kind=data.kind, author_id=data.author_id)
    row.kind = data.kind
    row.author_id = data.author_id
    row.group_id = data.group_id
    row.visibility = data.visibility
    row.title = data.title
    row.parent_id = data.parent_id
    row.thread_id = data.thread_id
    row.version = data.version
    session.add(row)
    return True


def do_project_deletion(*, session: Session, data: ContentEvent) -> None:
    """Mark the item deleted (a tombstone, created if the delete arrives first)."""
    row = session.get(NotifiedContent, data.content_id)
    if row is None:
        row = NotifiedContent(
            content_id=data.content_id,
            kind=data.kind,
            author_id=data.author_id,
            group_id=data.group_id,
            visibility=data.visibility,
        )
    row.deleted = True
    row.title = None
    row.version = max(row.version, data.version)
    session.add(row)


def private_group_of(group_id: UUID | None, visibility: str) -> UUID | None:
    """The group whose membership gates an item: only private items are gated."""
    return group_id if visibility == "private" else None
