"""Admin endpoints that end and restore a person's access (see `accounts`)."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from services.identity import accounts
from services.identity.audit import Origin
from services.identity.schemas import UserPublic
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute

router = APIRouter(route_class=IdempotentRoute, tags=["users"])

ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only an admin"},
    404: {"description": "No such user"},
}


@router.post(
    "/users/{user_id}/deactivate",
    responses={400: {"description": "An admin cannot deactivate themselves"}, **ADMIN_ONLY},
)
def deactivate_user(
    user_id: UUID, principal: CurrentUser, session: SessionDep, request: Request
) -> UserPublic:
    """End a person's access (admin): sign-in refused, every token refused within seconds.

    Their content stays, shown as from a former member (`active: false`). Deactivating a
    deactivated person changes nothing.
    """
    user = accounts.do_deactivate_user(
        session=session, principal=principal, user_id=user_id, origin=Origin.of(request)
    )
    return UserPublic.model_validate(user, from_attributes=True)


@router.post("/users/{user_id}/reactivate", responses=ADMIN_ONLY)
def reactivate_user(
    user_id: UUID, principal: CurrentUser, session: SessionDep, request: Request
) -> UserPublic:
    """Restore a person's access (admin): they sign in again; tokens from before stay refused."""
    user = accounts.do_reactivate_user(
        session=session, principal=principal, user_id=user_id, origin=Origin.of(request)
    )
    return UserPublic.model_validate(user, from_attributes=True)
