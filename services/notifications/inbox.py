"""Reading a person's inbox: permission is checked at read, so what they may no longer see
(a group they left, a deleted item) disappears from lists, counts and marks alike."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from services.notifications.models import (
    Notification,
    NotifiedContent,
    NotifiedMembership,
    NotifiedUser,
)
from shared.db import in_list
from shared.errors import BadRequest, NotFound
from shared.ids import utcnow
from shared.pagination import cursor_text, cursor_time, decode_cursor, encode_cursor, paginate, past


def visible() -> ColumnElement[bool]:
    """SQL: the notification's person may still see it (member of its group; item not deleted)."""
    member = exists().where(
        col(NotifiedMembership.group_id) == col(Notification.group_id),
        col(NotifiedMembership.user_id) == col(Notification.user_id),
        col(NotifiedMembership.active).is_(True),
    )
    deleted = exists().where(
        col(NotifiedContent.deleted).is_(True),
        or_(
            col(NotifiedContent.content_id) == col(Notification.item_id),
            col(NotifiedContent.content_id) == col(Notification.thread_id),
        ),
    )
    return and_(or_(col(Notification.group_id).is_(None), member), ~deleted)


def _mine(user_id: UUID) -> list[ColumnElement[bool]]:
    return [col(Notification.user_id) == user_id, visible()]


def _time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    return cursor_time(values[0]), cursor_text(values[1])


def list_notifications(
    *,
    session: Session,
    user_id: UUID,
    limit: int,
    cursor: str | None,
    unread: bool | None,
    kind: str | None,
) -> tuple[list[Notification], str | None]:
    """Newest first (UUIDv7 ids follow creation), keyset-paged by id."""
    query = select(Notification).where(*_mine(user_id))
    if unread is True:
        query = query.where(col(Notification.read_at).is_(None))
    elif unread is False:
        query = query.where(col(Notification.read_at).is_not(None))
    if kind is not None:
        query = query.where(Notification.kind == kind)
    after = decode_cursor(cursor, 1)
    if after is not None:
        try:
            query = query.where(col(Notification.id) < UUID(str(after[0])))
        except ValueError:
            raise BadRequest("malformed cursor") from None
    query = query.order_by(col(Notification.id).desc())
    return paginate(session, query, limit=limit, cursor_of=lambda row: [str(row.id)])


def check_notification(*, session: Session, user_id: UUID, notification_id: UUID) -> Notification:
    """The person's own, still visible notification; anything else is a 404."""
    row = session.exec(
        select(Notification).where(col(Notification.id) == notification_id, *_mine(user_id))
    ).first()
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    return row


def do_mark(*, session: Session, notification: Notification, read: bool) -> Notification:
    """Mark one read (keeping the first time it was read) or unread."""
    if read and notification.read_at is None:
        notification.read_at = utcnow()
    elif not read:
        notification.read_at = None
    session.add(notification)
    return notification


def do_mark_all_read(
    *, session: Session, user_id: UUID, before: datetime | None, group_key: str | None
) -> int:
    """Mark the visible unread ones read (up to `before`, of `group_key`); how many."""
    conditions = [*_mine(user_id), col(Notification.read_at).is_(None)]
    if before is not None:
        conditions.append(col(Notification.created_at) <= before)
    if group_key is not None:
        conditions.append(col(Notification.group_key) == group_key)
    ids = select(Notification.id).where(*conditions)
    statement = (
        update(Notification)
        .where(col(Notification.id).in_(ids.scalar_subquery()))
        .values(read_at=utcnow())
        .returning(col(Notification.id))
    )
    return len(session.execute(statement).all())


def unread_count(*, session: Session, user_id: UUID) -> int:
    """Unread notifications the person may still see."""
    query = select(func.count()).where(*_mine(user_id), col(Notification.read_at).is_(None))
    return int(session.exec(query).one())


def actors_of(session: Session, notifications: list[Notification]) -> dict[UUID, NotifiedUser]:
    """The people who caused these notifications, in one query."""
    ids = {row.actor_id for row in notifications if row.actor_id is not None}
    if not ids:
        return {}
    people = session.exec(select(NotifiedUser).where(in_list(NotifiedUser.user_id, ids))).all()
    return {person.user_id: person for person in people}


@dataclass(frozen=True)
class NotificationGroup:
    group_key: str
    count: int
    unread_count: int
    latest_at: datetime
    latest: Notification


def list_groups(
    *, session: Session, user_id: UUID, limit: int, cursor: str | None
) -> tuple[list[NotificationGroup], str | None]:
    """One entry per `group_key`, newest first, keyset-paged by (latest time, key)."""
    latest_at = func.max(Notification.created_at)
    unread = func.sum(case((col(Notification.read_at).is_(None), 1), else_=0))
    query: Any = (
        select(Notification.group_key, func.count(), unread, latest_at)
        .where(*_mine(user_id))
        .group_by(col(Notification.group_key))
    )
    after = _time_cursor(cursor)
    if after is not None:
        query = query.having(past(latest_at, col(Notification.group_key), after, descending=True))
    query = query.order_by(latest_at.desc(), col(Notification.group_key).desc()).limit(limit + 1)
    rows: list[Any] = list(session.execute(query).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1][3].isoformat(), rows[-1][0]])
    latest = _latest_of(session, user_id, [row[0] for row in rows])
    groups = [
        NotificationGroup(
            group_key=key,
            count=int(count),
            unread_count=int(unread_count or 0),
            latest_at=at,
            latest=latest[key],
        )
        for key, count, unread_count, at in rows
        if key in latest
    ]
    return groups, next_cursor


def _latest_of(session: Session, user_id: UUID, keys: list[str]) -> dict[str, Notification]:
    """The newest visible notification of each group key, in one query."""
    if not keys:
        return {}
    ranked = (
        select(
            col(Notification.id).label("id"),
            func.row_number()
            .over(partition_by=Notification.group_key, order_by=col(Notification.id).desc())
            .label("rank"),
        )
        .where(*_mine(user_id), in_list(Notification.group_key, keys))
        .subquery()
    )
    newest = aliased(Notification)
    rows = session.exec(
        select(newest).join(ranked, ranked.c.id == newest.id).where(ranked.c.rank == 1)
    ).all()
    return {row.group_key: row for row in rows}
