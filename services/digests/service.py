"""Digests' projection rules: fold events into the `digests_*` tables, order-safe.

Content is ordered by its `version`; a deletion is final (the row stays as a tombstone,
scrubbed of text, so a late create cannot bring it back). Follows, memberships and
profiles carry no version, so the event time orders them and an older event never
overwrites a newer one. Functions here add rows to the caller's session and never commit.
"""

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete
from sqlmodel import Session, col

from services.digests.models import (
    DigestContent,
    DigestContentTag,
    DigestFollow,
    DigestGroup,
    DigestMembership,
    DigestPreference,
    DigestUser,
)
from shared.events.contracts import (
    ContentEvent,
    ContentSnapshot,
    FollowEvent,
    GroupCreated,
    GroupEvent,
    MembershipEvent,
    NotificationPreferencesUpdated,
    UserProfileUpdated,
    UserRegistered,
)
from shared.projections import do_apply_fact

EXCERPT_CHARS = 200
_WHITESPACE = re.compile(r"\s+")


def normalise_tag(tag: str) -> str:
    return tag.strip().lower().removeprefix("#")


def normalise_mention(mention: str) -> str:
    return mention.strip().lower().removeprefix("@")


def make_excerpt(body: str, limit: int = EXCERPT_CHARS) -> str:
    """The first `limit` characters of the body on one line, cut at a word boundary."""
    text = _WHITESPACE.sub(" ", body).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" .,;:") + "…"


def thread_root_of(data: ContentSnapshot) -> UUID:
    """The conversation an item belongs to: its thread (or parent) for a reply, else itself."""
    if data.kind == "reply" or data.parent_id is not None:
        return data.thread_id or data.parent_id or data.content_id
    return data.content_id


def _replace_tags(session: Session, content_id: UUID, tags: list[str]) -> None:
    session.execute(delete(DigestContentTag).where(col(DigestContentTag.content_id) == content_id))
    for tag in tags:
        session.add(DigestContentTag(tag=tag, content_id=content_id))


def do_project_content(*, session: Session, data: ContentSnapshot) -> bool:
    """Store a snapshot unless it is stale, a replay, or the item was deleted; True if stored."""
    row = session.get(DigestContent, data.content_id)
    if row is not None and (row.deleted or data.version <= row.version):
        return False
    tags = sorted({normalise_tag(tag) for tag in data.tags} - {""})
    fields: dict[str, Any] = {
        "kind": data.kind,
        "author_id": data.author_id,
        "group_id": data.group_id,
        "visibility": data.visibility,
        "title": data.title,
        "excerpt": make_excerpt(data.body),
        "tags": tags,
        "mentions": sorted({normalise_mention(m) for m in data.mentions} - {""}),
        "parent_id": data.parent_id,
        "thread_root_id": thread_root_of(data),
        "created_at": data.created_at,
        "version": data.version,
        "hidden": data.hidden,
    }
    if row is None:
        row = DigestContent(content_id=data.content_id, **fields)
    else:
        for name, value in fields.items():
            setattr(row, name, value)
    session.add(row)
    _replace_tags(session, data.content_id, tags)
    return True


def do_project_deletion(*, session: Session, data: ContentEvent, deleted_at: datetime) -> None:
    """Turn the item into a tombstone (created if the delete arrives first)."""
    row = session.get(DigestContent, data.content_id)
    if row is None:
        row = DigestContent(
            content_id=data.content_id,
            kind=data.kind,
            author_id=data.author_id,
            group_id=data.group_id,
            visibility=data.visibility,
            thread_root_id=data.content_id,
            created_at=deleted_at,
            version=data.version,
        )
    # What was deleted should not linger here either.
    row.deleted = True
    row.version = max(row.version, data.version)
    row.title = None
    row.excerpt = ""
    row.tags = []
    row.mentions = []
    session.add(row)
    _replace_tags(session, data.content_id, [])


def do_project_follow(*, session: Session, data: FollowEvent, active: bool, at: datetime) -> bool:
    """Record a follow or unfollow unless a newer event about it was already applied."""
    target = normalise_tag(data.target) if data.target_type == "tag" else data.target.lower()
    row = session.get(DigestFollow, (data.follower_id, data.target_type, target))
    if row is None:
        row = DigestFollow(
            follower_id=data.follower_id,
            target_type=data.target_type,
            target=target,
            active=active,
            changed_at=at,
        )
    elif row.changed_at > at:
        return False
    else:
        row.active = active
        row.changed_at = at
    session.add(row)
    return True


def _project_group(
    session: Session, data: GroupEvent, *, name: str | None = None, slug: str | None = None
) -> None:
    row = session.get(DigestGroup, data.group_id)
    if row is None:
        row = DigestGroup(group_id=data.group_id, visibility=data.visibility)
    # Private is sticky: no event may quietly make a private group's content public here.
    if data.visibility == "private":
        row.visibility = "private"
    row.name = name or row.name
    row.slug = slug or row.slug
    session.add(row)


def do_project_group(*, session: Session, data: GroupCreated) -> None:
    """Remember a group's visibility and name (for section labels)."""
    _project_group(session, data, name=data.name, slug=data.slug)


def do_project_membership(
    *, session: Session, data: MembershipEvent, user_id: UUID, active: bool, at: datetime
) -> bool:
    """Record that someone joined or left a group, unless a newer version was already applied."""
    _project_group(session, data)
    return do_apply_fact(
        session=session,
        model=DigestMembership,
        keys=["group_id", "user_id"],
        values={
            "group_id": data.group_id,
            "user_id": user_id,
            "active": active,
            "version": data.version,
            "changed_at": at,
        },
    )


def do_project_user(
    *, session: Session, data: UserRegistered | UserProfileUpdated, at: datetime
) -> bool:
    """Keep a person's handle and display name for labels and mentions."""
    row = session.get(DigestUser, data.user_id)
    if row is None:
        row = DigestUser(
            user_id=data.user_id,
            handle=data.handle.lower(),
            display_name=data.display_name,
            changed_at=at,
        )
    elif row.changed_at > at:
        return False
    else:
        row.handle = data.handle.lower()
        row.display_name = data.display_name
        row.changed_at = at
    session.add(row)
    return True


def do_project_preference(
    *, session: Session, data: NotificationPreferencesUpdated, at: datetime
) -> bool:
    """Keep a person's digest schedule, unless a higher version was already applied."""
    return do_apply_fact(
        session=session,
        model=DigestPreference,
        keys=["user_id"],
        values={
            "user_id": data.user_id,
            "frequency": data.digest_frequency,
            "hour": data.digest_hour,
            "timezone": data.timezone,
            "version": data.version,
            "changed_at": at,
        },
    )
