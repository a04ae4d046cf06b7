"""Digests' endpoints: parse, call `build_digest` (or `send_digests`), return."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from services.digests.delivery import send_digests
from services.digests.digest import build_digest
from services.digests.models import DigestUser
from services.digests.schemas import DigestPeriod, DigestPublic, DigestRunPublic
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound
from shared.idempotency import IdempotentRoute
from shared.ids import utcnow

router = APIRouter(prefix="/digests", tags=["digests"], route_class=IdempotentRoute)
admin_router = APIRouter(prefix="/admin/digests", tags=["admin"], route_class=IdempotentRoute)

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
    responses={
        400: {"description": "`until` in the future or too long ago"},
        403: {"description": "Not an admin"},
        404: {"description": "Unknown user"},
    },
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


@admin_router.post("/send", responses={403: {"description": "Not an admin"}})
def send_digests_now(
    principal: CurrentUser,
    request: Request,
    period: Annotated[DigestPeriod, Query(description="Which period's digests to send.")],
    force: Annotated[
        bool,
        Query(description="Send for the window ending now instead of the latest boundary."),
    ] = False,
) -> DigestRunPublic:
    """Send the period's digests for its latest window now; a window is only ever sent once."""
    if not principal.is_admin:
        raise Forbidden("only admins can send digests")
    now = utcnow()
    report = send_digests(
        engine=request.app.state.engine,
        period=period,
        now=now,
        window_end=now.replace(second=0, microsecond=0) if force else None,
        hour_utc=request.app.state.digest_settings.hour_utc,
    )
    return DigestRunPublic(
        period=report.period,
        window_end=report.window_end,
        sent=report.sent,
        already_sent=report.already_sent,
    )
