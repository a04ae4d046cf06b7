"""One's own data held by notifications (the gateway serves it at
`/users/me/export/notifications`)."""

from typing import Any

from fastapi import APIRouter

from services.notifications import privacy
from shared.auth import CurrentUser
from shared.db import SessionDep

router = APIRouter(tags=["privacy"])


@router.get("/export/me")
def export_me(principal: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """The caller's e-mail address on file, notification preferences and inbox."""
    return privacy.export(session, principal.user_id)
