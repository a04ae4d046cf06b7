"""The inbox and preferences: parse, call the service, return."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Query

from services.notifications import inbox
from services.notifications.inbox import NotificationGroup
from services.notifications.preferences import do_update_preferences, preferences_public
from services.notifications.schemas import (
    MarkAllRead,
    Marked,
    NotificationGroupPage,
    NotificationGroupPublic,
    NotificationPage,
    NotificationPublic,
    PreferencesPatch,
    PreferencesPublic,
    UnreadCount,
    notification_public,
)
from services.notifications.service import preferences_of
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.events.contracts import NotificationKind
from shared.idempotency import IdempotentRoute
from shared.pagination import LIST_ERRORS, CursorParam, PageSize
from shared.query import StrictQuery

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=IdempotentRoute)

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "No or bad token"}}
BAD_CURSOR: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    **LIST_ERRORS,
}
NOT_MINE: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    404: {"description": "No such notification of yours (or no longer visible to you)"},
}

# How a pile of notifications of one kind is summed up ("5 new answers on “…”").
_SUMMARIES = {
    "answer": "{n} new answers on {subject}",
    "comment": "{n} new comments on {subject}",
    "reply": "{n} new replies to {subject}",
    "escalated": "Your question {subject} went to more people {n} times",
    "routed": "{n} requests for help with {subject}",
    "digest": "{n} digests",
}


def summary_title(group: NotificationGroup) -> str:
    """The latest title for one, a summary for several."""
    template = _SUMMARIES.get(group.latest.kind)
    if group.count == 1 or template is None:
        return group.latest.title
    subject = group.latest.details.get("subject")
    return template.format(n=group.count, subject=f"“{subject}”" if subject else "your item")


@router.get("", summary="My notifications", responses=BAD_CURSOR, dependencies=[StrictQuery])
def list_my_notifications(
    principal: CurrentUser,
    session: SessionDep,
    limit: PageSize = 20,
    cursor: CursorParam = None,
    unread: Annotated[bool | None, Query(description="Only unread (true) or read (false).")] = None,
    kind: Annotated[NotificationKind | None, Query(description="Only this kind.")] = None,
) -> NotificationPage:
    """Newest first; items you may no longer see (a group you left, deleted content) are gone."""
    rows, next_cursor = inbox.list_notifications(
        session=session,
        user_id=principal.user_id,
        limit=limit,
        cursor=cursor,
        unread=unread,
        kind=kind,
    )
    actors = inbox.actors_of(session, rows)
    items = [notification_public(row, actors.get(row.actor_id)) for row in rows]  # type: ignore[arg-type]
    return NotificationPage(items=items, next_cursor=next_cursor)


@router.get(
    "/grouped",
    summary="My notifications, grouped",
    responses=BAD_CURSOR,
    dependencies=[StrictQuery],
)
def list_my_notification_groups(
    principal: CurrentUser, session: SessionDep, limit: PageSize = 20, cursor: CursorParam = None
) -> NotificationGroupPage:
    """One entry per group ("5 new answers on “…”"), the most recently active first."""
    groups, next_cursor = inbox.list_groups(
        session=session, user_id=principal.user_id, limit=limit, cursor=cursor
    )
    actors = inbox.actors_of(session, [group.latest for group in groups])
    items = [
        NotificationGroupPublic(
            group_key=group.group_key,
            kind=group.latest.kind,
            count=group.count,
            unread_count=group.unread_count,
            title=summary_title(group),
            url=group.latest.url,
            latest_at=group.latest_at,
            latest=notification_public(group.latest, actors.get(group.latest.actor_id)),  # type: ignore[arg-type]
        )
        for group in groups
    ]
    return NotificationGroupPage(items=items, next_cursor=next_cursor)


@router.get(
    "/unread-count", summary="How many unread", responses=UNAUTHORIZED, dependencies=[StrictQuery]
)
def read_unread_count(principal: CurrentUser, session: SessionDep) -> UnreadCount:
    """Unread notifications you may still see."""
    return UnreadCount(unread=inbox.unread_count(session=session, user_id=principal.user_id))


@router.post(
    "/read-all",
    summary="Mark all read",
    responses={**UNAUTHORIZED, 422: {"description": "Bad body"}},
)
def mark_all_read(
    principal: CurrentUser, session: SessionDep, body: Annotated[MarkAllRead | None, Body()] = None
) -> Marked:
    """Mark unread ones read; `before` and `group_key` limit it to what a page showed."""
    body = body or MarkAllRead()
    marked = inbox.do_mark_all_read(
        session=session, user_id=principal.user_id, before=body.before, group_key=body.group_key
    )
    return Marked(marked=marked)


@router.get("/preferences", summary="My notification preferences", responses=UNAUTHORIZED)
def read_preferences(principal: CurrentUser, session: SessionDep) -> PreferencesPublic:
    """Every kind's channel (defaults filled in), the digest schedule and quiet hours."""
    return preferences_public(preferences_of(session=session, user_id=principal.user_id))


@router.patch(
    "/preferences",
    summary="Change my notification preferences",
    responses={
        **UNAUTHORIZED,
        422: {"description": "Unknown kind or channel, bad time zone, hour or time"},
    },
)
def update_preferences(
    principal: CurrentUser, session: SessionDep, patch: PreferencesPatch
) -> PreferencesPublic:
    """Change only what the body names; a new digest schedule reaches the digests service."""
    row = do_update_preferences(session=session, user_id=principal.user_id, patch=patch)
    return preferences_public(row)


@router.get("/{notification_id:uuid}", summary="One notification", responses=NOT_MINE)
def read_notification(
    notification_id: UUID, principal: CurrentUser, session: SessionDep
) -> NotificationPublic:
    """One of your notifications."""
    row = inbox.check_notification(
        session=session, user_id=principal.user_id, notification_id=notification_id
    )
    return _public(session, row)


@router.post("/{notification_id:uuid}/read", summary="Mark read", responses=NOT_MINE)
def mark_read(
    notification_id: UUID, principal: CurrentUser, session: SessionDep
) -> NotificationPublic:
    """Mark one of your notifications read."""
    row = inbox.check_notification(
        session=session, user_id=principal.user_id, notification_id=notification_id
    )
    return _public(session, inbox.do_mark(session=session, notification=row, read=True))


@router.post("/{notification_id:uuid}/unread", summary="Mark unread", responses=NOT_MINE)
def mark_unread(
    notification_id: UUID, principal: CurrentUser, session: SessionDep
) -> NotificationPublic:
    """Mark one of your notifications unread again."""
    row = inbox.check_notification(
        session=session, user_id=principal.user_id, notification_id=notification_id
    )
    return _public(session, inbox.do_mark(session=session, notification=row, read=False))


def _public(session: SessionDep, row: Any) -> NotificationPublic:
    return notification_public(row, inbox.actors_of(session, [row]).get(row.actor_id))
