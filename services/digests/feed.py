"""The home feed: what the people, tags and groups a person follows produced, newest first.

The same projections and the same visibility rule as the digest (`digest.visible_to`,
decided in the query at read time: a private group's items only for its members now;
deleted and hidden items never), without a time window: a keyset page over
`(created_at, content_id)` descending. Each item says which follows brought it.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy import or_
from sqlmodel import Session, col, select

from services.digests.digest import Follows, load_follows, visible_to
from services.digests.models import DigestContent, DigestContentTag, DigestGroup, DigestUser
from services.digests.schemas import FeedItem, FeedPage, FeedReason, FeedReasonKind
from shared.db import in_list
from shared.pagination import cursor_id, cursor_time, decode_cursor, encode_cursor, past


def _cursor_after(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The (created_at, content_id) a `next_cursor` points after; malformed is a 400."""
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    created, content_id = values
    return cursor_time(created), cursor_id(content_id)


def reasons_for(row: DigestContent, follows: Follows) -> list[tuple[FeedReasonKind, str]]:
    """Every follow that brings the item in: (kind, value), person first, then group, tags."""
    reasons: list[tuple[FeedReasonKind, str]] = []
    if row.author_id in follows.users:
        reasons.append(("person", str(row.author_id)))
    if row.group_id is not None and row.group_id in follows.groups:
        reasons.append(("group", str(row.group_id)))
    reasons.extend(("tag", tag) for tag in row.tags if tag in follows.tags)
    return reasons


def load_feed_rows(
    *,
    session: Session,
    user_id: UUID,
    follows: Follows,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[DigestContent]:
    """Up to `limit` visible, live items by others that a follow brings in, newest first."""
    tagged = select(DigestContentTag.content_id).where(
        in_list(DigestContentTag.tag, sorted(follows.tags))
    )
    query = select(DigestContent).where(
        col(DigestContent.deleted).is_(False),
        col(DigestContent.hidden).is_(False),
        col(DigestContent.author_id) != user_id,
        or_(
            col(DigestContent.author_id).in_(sorted(follows.users)),
            col(DigestContent.group_id).in_(sorted(follows.groups)),
            col(DigestContent.content_id).in_(tagged),
        ),
        visible_to(user_id),
    )
    if after is not None:
        created, content_id = col(DigestContent.created_at), col(DigestContent.content_id)
        query = query.where(past(created, content_id, after, descending=True))
    query = query.order_by(
        col(DigestContent.created_at).desc(), col(DigestContent.content_id).desc()
    ).limit(limit)
    return list(session.exec(query).all())


def build_feed(*, session: Session, user_id: UUID, cursor: str | None, limit: int) -> FeedPage:
    """One page of the person's home feed; empty when they follow nothing."""
    after = _cursor_after(cursor)
    follows = load_follows(session=session, user_id=user_id)
    if not follows:
        return FeedPage(items=[], next_cursor=None, follows_anything=False)
    rows = load_feed_rows(
        session=session, user_id=user_id, follows=follows, after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    people = {
        user.user_id: user
        for user in session.exec(
            select(DigestUser).where(col(DigestUser.user_id).in_({row.author_id for row in rows}))
        ).all()
    }
    groups = {
        group.group_id: group
        for group in session.exec(
            select(DigestGroup).where(
                col(DigestGroup.group_id).in_({row.group_id for row in rows if row.group_id})
            )
        ).all()
    }
    items = []
    for row in rows:
        author = people.get(row.author_id)
        group = groups.get(row.group_id) if row.group_id else None
        group_name = (group.name or group.slug) if group else None
        reasons = []
        for kind, value in reasons_for(row, follows):
            if kind == "person":
                label = f"{author.display_name} (@{author.handle})" if author else "someone"
            elif kind == "group":
                label = group_name or "a group"
            else:
                label = f"#{value}"
            reasons.append(FeedReason(kind=kind, value=value, label=label))
        items.append(
            FeedItem(
                id=row.content_id,
                kind=row.kind,
                title=row.title,
                excerpt=row.excerpt,
                author_id=row.author_id,
                author_handle=author.handle if author else None,
                author_display_name=author.display_name if author else None,
                group_id=row.group_id,
                group_name=group_name,
                thread_root_id=row.thread_root_id,
                tags=list(row.tags),
                created_at=row.created_at,
                reasons=reasons,
            )
        )
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.content_id)])
    return FeedPage(items=items, next_cursor=next_cursor, follows_anything=True)
