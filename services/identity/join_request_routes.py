"""Requests to join a private group over HTTP (see `join_requests`).

Registered before identity's other routes: `/users/me/join-requests` is not `/users/{user_id}`.
"""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, status

from services.identity import join_requests
from services.identity.audit import Origin
from services.identity.join_request_schemas import (
    JoinRequestCreate,
    JoinRequestDetail,
    JoinRequestPublic,
    JoinRequestStatus,
)
from services.identity.models import JoinRequest, User
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.pagination import LIST_ERRORS, CursorParam, Page, PageSize
from shared.query import StrictQuery

router = APIRouter(route_class=IdempotentRoute, tags=["groups"])

Responses = dict[int | str, dict[str, Any]]
MANAGERS_ONLY: Responses = {
    403: {"description": "Only the group's owner or moderators"},
    404: {"description": "No such group (or private and not yours)"},
}


def detail(request: JoinRequest, user: User) -> JoinRequestDetail:
    return JoinRequestDetail.model_validate(
        {**request.model_dump(), "handle": user.handle, "display_name": user.display_name}
    )


@router.post(
    "/groups/{group_id}/join-requests",
    summary="Ask to join a private group",
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "The group is open: join it directly"},
        404: {"description": "No such group"},
        409: {"description": "Already a member, or a request is pending"},
    },
)
def request_to_join(
    group_id: UUID, principal: CurrentUser, session: SessionDep, body: JoinRequestCreate
) -> JoinRequestPublic:
    """Ask to join a private group; its owner or a moderator decides.

    The answer names no more of the group than its id. An open group is joined directly
    with `POST /groups/{group_id}/members` and one's own id.
    """
    created = join_requests.do_request_to_join(
        session=session, principal=principal, group_id=group_id, message=body.message
    )
    return JoinRequestPublic.model_validate(created, from_attributes=True)


@router.get(
    "/groups/{group_id}/join-requests",
    summary="List requests to join a group (owner, moderators)",
    dependencies=[StrictQuery],
    responses={**MANAGERS_ONLY, **LIST_ERRORS},
)
def list_join_requests(
    group_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    status: JoinRequestStatus | None = None,
    limit: PageSize = 20,
    cursor: CursorParam = None,
) -> Page[JoinRequestDetail]:
    """The group's requests to join with who asks (owner and moderators): pending ones
    first, oldest first; then decided ones, the most recent request first."""
    rows, next_cursor = join_requests.list_for_group(
        session=session,
        principal=principal,
        group_id=group_id,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return Page[JoinRequestDetail](
        items=[detail(request, user) for request, user in rows], next_cursor=next_cursor
    )


def _decide(
    *,
    approve: bool,
    group_id: UUID,
    request_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    request: Request,
) -> JoinRequestDetail:
    decided, user = join_requests.do_decide(
        session=session,
        principal=principal,
        group_id=group_id,
        request_id=request_id,
        approve=approve,
        origin=Origin.of(request),
    )
    return detail(decided, user)


DECIDE: Responses = {
    **MANAGERS_ONLY,
    404: {"description": "No such group (or private and not yours), or no such request in it"},
    409: {"description": "The request was already decided"},
}


@router.post(
    "/groups/{group_id}/join-requests/{request_id}/approve",
    summary="Approve a request to join",
    responses=DECIDE,
)
def approve_join_request(
    group_id: UUID, request_id: UUID, principal: CurrentUser, session: SessionDep, request: Request
) -> JoinRequestDetail:
    """Approve (owner or moderators): the requester becomes a member."""
    return _decide(
        approve=True,
        group_id=group_id,
        request_id=request_id,
        principal=principal,
        session=session,
        request=request,
    )


@router.post(
    "/groups/{group_id}/join-requests/{request_id}/decline",
    summary="Decline a request to join",
    responses=DECIDE,
)
def decline_join_request(
    group_id: UUID, request_id: UUID, principal: CurrentUser, session: SessionDep, request: Request
) -> JoinRequestDetail:
    """Decline (owner or moderators): the requester sees `declined` and may ask again."""
    return _decide(
        approve=False,
        group_id=group_id,
        request_id=request_id,
        principal=principal,
        session=session,
        request=request,
    )


@router.get(
    "/users/me/join-requests",
    summary="My requests to join groups",
    dependencies=[StrictQuery],
    responses=LIST_ERRORS,
)
def list_my_join_requests(
    principal: CurrentUser, session: SessionDep, limit: PageSize = 20, cursor: CursorParam = None
) -> Page[JoinRequestPublic]:
    """The caller's own requests to join and their status, newest first."""
    rows, next_cursor = join_requests.list_own(
        session=session, principal=principal, cursor=cursor, limit=limit
    )
    return Page[JoinRequestPublic](
        items=[JoinRequestPublic.model_validate(row, from_attributes=True) for row in rows],
        next_cursor=next_cursor,
    )
