"""Digests' endpoints: parse, call `build_digest`, return."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from services.digests.digest import build_digest
from services.digests.models import DigestUser
from services.digests.schemas import DigestPeriod, DigestPublic
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound
from shared.ids import utcnow

router = APIRouter(prefix="/digests", tags=["digests"])

PeriodParam = Annotated[
    DigestPeriod, Query(description="`daily` is the last 24 hours, `weekly` the last 7 days.")
]
UntilParam = Annotated[
    datetime | None,
    Query(description="End of a past window (ISO 8601; UTC if no offset). Defaults to now."),
]


@router.get("/me", responses={400: {"description": "`until` in the future or too long ago"}})
def read_my_digest(
    principal: CurrentUser,
    session: SessionDep,
    period: PeriodParam = "daily",
    until: UntilParam = None,
) -> DigestPublic:
    """What the people, tags and groups you follow produced in the period."""
    return build_digest(
        session=session, user_id=principal.user_id, period=period, now=utcnow(), until=until
    )


@router.get(
    "/users/{user_id}",
    responses={403: {"description": "Not an admin"}, 404: {"description": "Unknown user"}},
)
def read_user_digest(
    user_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    period: PeriodParam = "daily",
    until: UntilParam = None,
) -> DigestPublic:
    """Someone's digest, as they would see it (admins only)."""
    if not principal.is_admin:
        raise Forbidden("only admins can read someone else's digest")
    if session.get(DigestUser, user_id) is None:
        raise NotFound(f"no user {user_id}")
    return build_digest(session=session, user_id=user_id, period=period, now=utcnow(), until=until)
