"""Digests' endpoints: parse, call `build_digest` (or the senders in delivery), return."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from services.digests.delivery import send_digests_now, send_due_digests
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
def send_digests_now_route(
    principal: CurrentUser,
    request: Request,
    period: Annotated[
        DigestPeriod, Query(description="Send to the people whose digests are this period's.")
    ],
    force: Annotated[
        bool,
        Query(
            description=(
                "Send for the window ending now instead of each person's latest scheduled one."
            )
        ),
    ] = False,
) -> DigestRunPublic:
    """Send the digests due to everyone on this period now; a person's window goes out once.

    Each person's window ends at their own local hour. Without `force` this sends the
    windows the schedule would send next; with it, a window ending now (items already
    sent by an earlier digest are never repeated, so nobody gets the same item twice).
    """
    if not principal.is_admin:
        raise Forbidden("only admins can send digests")
    now = utcnow()
    engine = request.app.state.engine
    if force:
        report = send_digests_now(engine=engine, period=period, now=now)
    else:
        report = send_due_digests(engine=engine, now=now, period=period)
    return DigestRunPublic(
        period=period,
        window_end=now.replace(second=0, microsecond=0) if force else None,
        sent=report.sent,
        nothing_new=report.nothing_new,
        already_sent=report.already_sent,
    )
