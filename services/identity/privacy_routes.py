"""Delete on request (GDPR erasure) and export of one's own data: parse, call, shape.

Registered before identity's other routes: `/users/erasure-report` and `/users/me/...`
must not be read as `/users/{user_id}`.
"""

from uuid import UUID

from fastapi import APIRouter, Request, status

from services.identity import privacy
from services.identity.audit import Origin
from services.identity.privacy_schemas import (
    ErasureByAdmin,
    ErasureBySelf,
    ErasurePublic,
    IdentityExport,
)
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute

router = APIRouter(route_class=IdempotentRoute, tags=["privacy"])


@router.get(
    "/users/me/export",
    responses={401: {"description": "No token, a bad one, or an account erased since"}},
)
def export_me(principal: CurrentUser, session: SessionDep) -> IdentityExport:
    """The caller's profile, follows and memberships; `parts` name the other services' parts."""
    user = privacy.check_caller(session=session, principal=principal)
    return privacy.export(session=session, user=user)


@router.post(
    "/users/me/erasure",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        401: {"description": "No token, a bad one, or an account erased since"},
        403: {"description": "The password does not match"},
    },
)
def erase_me(
    request: Request, principal: CurrentUser, body: ErasureBySelf, session: SessionDep
) -> ErasurePublic:
    """Erase one's own personal data everywhere (confirmed by password); ends one's access.

    The answer is the report so far: identity's part at once, the other services' parts
    within seconds at `/users/erasure-report?erasure_id=...`."""
    user = privacy.check_caller(session=session, principal=principal)
    privacy.check_password(user=user, password=body.password)
    erasure = privacy.do_erase(
        session=session,
        user=user,
        requested_by="self",
        actor_id=principal.user_id,
        origin=Origin.of(request),
    )
    return privacy.check_report(session=session, erasure_id=erasure.id)


@router.post(
    "/users/{user_id}/erasure",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: {"description": "Not an admin, or oneself (that takes one's password)"},
        404: {"description": "No such user"},
        409: {"description": "Already erased (the problem names the erasure)"},
    },
)
def erase_user(
    request: Request,
    user_id: UUID,
    principal: CurrentUser,
    body: ErasureByAdmin,
    session: SessionDep,
) -> ErasurePublic:
    """An admin erases a person's personal data everywhere (`confirm: true`)."""
    user = privacy.check_erasable(session=session, principal=principal, user_id=user_id)
    erasure = privacy.do_erase(
        session=session,
        user=user,
        requested_by="admin",
        actor_id=principal.user_id,
        origin=Origin.of(request),
    )
    return privacy.check_report(session=session, erasure_id=erasure.id)


@router.get("/users/erasure-report", responses={404: {"description": "No such erasure"}})
def erasure_report(erasure_id: UUID, session: SessionDep) -> ErasurePublic:
    """What each service removed for one erasure. No token (the erased person has none left):
    the random erasure id is the credential, and the report names no one."""
    return privacy.check_report(session=session, erasure_id=erasure_id)
