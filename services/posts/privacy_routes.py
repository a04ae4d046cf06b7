"""One's own data held by posts (the gateway serves it at `/users/me/export/posts`)."""

from typing import Any

from fastapi import APIRouter

from services.posts import privacy
from shared.auth import CurrentUser
from shared.db import SessionDep

router = APIRouter(tags=["privacy"])


@router.get("/export/me")
def export_me(principal: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """The caller's posts, articles, questions, answers, comments, reactions and votes."""
    return privacy.export(session, principal.user_id)
