"""Endpoints for roles (organisation and group), group edits, ownership transfers, the audit log."""

import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BeforeValidator

from services.identity import access, roles, service
from services.identity.audit import AuditFilter, Origin, list_entries
from services.identity.role_schemas import (
    AuditEntryPublic,
    GroupUpdate,
    MemberRoleChange,
    OrganisationRoleChange,
    OrganisationRolePublic,
    OwnershipTransfer,
)
from services.identity.routes import group_etag, member_public, read_group_detail
from services.identity.schemas import GroupDetail, MemberPublic
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.ids import UtcDatetime
from shared.pagination import LIST_ERRORS, CursorParam, Page, PageSize
from shared.preconditions import PRECONDITION_FAILED, WITH_ETAG, IfMatch, check_if_match
from shared.query import StrictQuery

router = APIRouter(route_class=IdempotentRoute)

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_text(value: object) -> object:
    """A time is RFC 3339 text with an offset: pydantic would also read "0" as epoch seconds."""
    if isinstance(value, str) and not RFC3339.match(value):
        raise ValueError("a time as RFC 3339 text with an offset, e.g. 2026-01-01T09:00:00Z")
    return value


AuditTime = Annotated[UtcDatetime, BeforeValidator(_rfc3339_text)]

Responses = dict[int | str, dict[str, Any]]
GROUP_404: Responses = {404: {"description": "No such group (or private and not yours)"}}


@router.put(
    "/users/{user_id}/role",
    tags=["users"],
    responses={
        403: {"description": "Only an admin changes roles"},
        404: {"description": "No such user"},
        409: {"description": "The last admin cannot be demoted"},
    },
)
def change_organisation_role(
    user_id: UUID,
    body: OrganisationRoleChange,
    principal: CurrentUser,
    session: SessionDep,
    request: Request,
) -> OrganisationRolePublic:
    """Make a person admin, analyst or member; their current tokens are revoked."""
    user = roles.do_change_organisation_role(
        session=session,
        principal=principal,
        user_id=user_id,
        role=body.role,
        origin=Origin.of(request),
    )
    return OrganisationRolePublic(user_id=user.id, role=body.role)


@router.patch(
    "/groups/{group_id}",
    tags=["groups"],
    responses={
        **WITH_ETAG,
        **PRECONDITION_FAILED,
        **GROUP_404,
        403: {"description": "Only the group's owner edits it"},
    },
)
def update_group(
    group_id: UUID,
    body: GroupUpdate,
    principal: CurrentUser,
    session: SessionDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> GroupDetail:
    """Rename the group or change its description (If-Match: only if still at that ETag)."""
    group = service.check_visible_group(session=session, group_id=group_id, principal=principal)
    access.check_group_owner(session=session, group=group, principal=principal, action="edit it")
    check_if_match(if_match, group_etag(group))
    roles.do_update_group(
        session=session, principal=principal, group=group, update=body, origin=Origin.of(request)
    )
    return read_group_detail(session=session, group=group, principal=principal, response=response)


@router.post(
    "/groups/{group_id}/transfer",
    tags=["groups"],
    responses={
        **WITH_ETAG,
        **PRECONDITION_FAILED,
        **GROUP_404,
        400: {"description": "The new owner is not a member, or is the owner already"},
        403: {"description": "Only the group's owner hands it over"},
    },
)
def transfer_ownership(
    group_id: UUID,
    body: OwnershipTransfer,
    principal: CurrentUser,
    session: SessionDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> GroupDetail:
    """Hand the group to one of its members; the outgoing owner stays as moderator or member."""
    group = service.check_visible_group(session=session, group_id=group_id, principal=principal)
    access.check_group_owner(
        session=session, group=group, principal=principal, action="transfer ownership"
    )
    check_if_match(if_match, group_etag(group))
    roles.do_transfer_ownership(
        session=session,
        principal=principal,
        group=group,
        new_owner_id=body.user_id,
        previous_owner_role=body.previous_owner_role,
        origin=Origin.of(request),
    )
    return read_group_detail(session=session, group=group, principal=principal, response=response)


@router.put(
    "/groups/{group_id}/members/{user_id}/role",
    tags=["groups"],
    responses={
        **GROUP_404,
        400: {"description": "The owner's role moves by transfer only"},
        403: {"description": "Only the group's owner changes roles"},
    },
)
def change_member_role(
    group_id: UUID,
    user_id: UUID,
    body: MemberRoleChange,
    principal: CurrentUser,
    session: SessionDep,
    request: Request,
) -> MemberPublic:
    """Make a member a moderator, or a moderator a member again."""
    membership = roles.do_change_member_role(
        session=session,
        principal=principal,
        group_id=group_id,
        user_id=user_id,
        role=body.role,
        origin=Origin.of(request),
    )
    user = service.check_user(session=session, user_id=user_id)
    return member_public(membership, user)


@router.get(
    "/audit",
    tags=["audit"],
    dependencies=[StrictQuery],
    responses={**LIST_ERRORS, 403: {"description": "Only an admin reads the audit log"}},
)
def list_audit(
    principal: CurrentUser,
    session: SessionDep,
    limit: PageSize = 50,
    cursor: CursorParam = None,
    actor_id: Annotated[UUID | None, Query(description="Only what this person did.")] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="Only this action (`group.updated`).")
    ] = None,
    target: Annotated[
        str | None, Query(max_length=200, description="Only this target (`user:<id>`).")
    ] = None,
    since: Annotated[AuditTime | None, Query(description="At or after this time.")] = None,
    until: Annotated[AuditTime | None, Query(description="Before this time.")] = None,
) -> Page[AuditEntryPublic]:
    """The audit log, newest first (admins): who did what to which target, when, from where."""
    access.check_audit_reader(principal)
    entries, next_cursor = list_entries(
        session,
        where=AuditFilter(
            actor_id=actor_id, action=action, target=target, since=since, until=until
        ),
        cursor=cursor,
        limit=limit,
    )
    return Page[AuditEntryPublic](
        items=[AuditEntryPublic.model_validate(entry, from_attributes=True) for entry in entries],
        next_cursor=next_cursor,
    )
