"""Session endpoints: refresh, logout, password change, password reset by e-mail."""

from typing import Any

from fastapi import APIRouter, Request, status

from services.identity import sessions
from services.identity.audit import Origin
from services.identity.routes import token_response
from services.identity.schemas import TokenResponse
from services.identity.session_schemas import (
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
)
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.errors import Unauthorized, problem_response
from shared.idempotency import IdempotentRoute
from shared.settings import Settings

router = APIRouter(route_class=IdempotentRoute, tags=["auth"])

POLICY_REFUSAL: dict[int | str, dict[str, Any]] = {
    422: {"description": "A new password the policy refuses (says why)"}
}


@router.post(
    "/auth/refresh",
    response_model=TokenResponse,
    responses={401: {"description": "Unknown, expired or spent refresh token, or ended session"}},
)
def refresh(request: Request, body: RefreshRequest, session: SessionDep) -> Any:
    """Spend a refresh token for a new access token and the next refresh token.

    A refresh token is good once: presenting a spent one ends its whole session.
    """
    settings: Settings = request.app.state.settings
    outcome = sessions.do_refresh(
        session=session,
        refresh_token=body.refresh_token,
        ttl_seconds=settings.refresh_token_ttl_seconds,
        origin=Origin.of(request),
    )
    if outcome.sign_in is None:
        # Answered, not raised: ending a session on reuse must commit.
        refused = Unauthorized(outcome.refused or "refresh refused")
        return problem_response(
            refused.status, refused.detail, instance=request.url.path, headers=refused.headers
        )
    return token_response(request, outcome.sign_in)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={400: {"description": "The token belongs to no session"}},
)
def logout(request: Request, principal: CurrentUser, session: SessionDep) -> None:
    """End the session of the calling token: it refreshes no more, its tokens are revoked."""
    sessions.do_logout(
        session=session,
        user_id=principal.user_id,
        session_id=principal.session_id,
        origin=Origin.of(request),
    )


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"description": "The current password is wrong"}, **POLICY_REFUSAL},
)
def change_password(
    request: Request, body: PasswordChange, principal: CurrentUser, session: SessionDep
) -> None:
    """Change one's password; every other session ends, this one stays."""
    sessions.do_change_password(
        session=session,
        user_id=principal.user_id,
        session_id=principal.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
        origin=Origin.of(request),
    )


@router.post("/auth/password-reset", status_code=status.HTTP_202_ACCEPTED)
def request_password_reset(
    request: Request, body: PasswordResetRequest, session: SessionDep
) -> None:
    """E-mail a single-use reset link; answered alike whether or not the account exists."""
    settings: Settings = request.app.state.settings
    sessions.do_request_password_reset(
        session=session,
        email=body.email,
        ttl_seconds=settings.password_reset_ttl_seconds,
        origin=Origin.of(request),
    )


@router.post(
    "/auth/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={400: {"description": "Used, expired or unknown reset link"}, **POLICY_REFUSAL},
)
def confirm_password_reset(
    request: Request, body: PasswordResetConfirm, session: SessionDep
) -> None:
    """Set a new password with the link's token; every session of the account ends."""
    sessions.do_confirm_password_reset(
        session=session,
        token=body.token,
        new_password=body.new_password,
        origin=Origin.of(request),
    )
