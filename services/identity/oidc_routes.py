"""Single sign-on endpoints: the providers, the redirect to one, its callback, the hand-off.

A web front end signs people in with `login?return_to=/path`: the callback then sends the
browser back to that path with `sso_code` (or `sso_error`), and the front end trades the
code once, server to server, at `POST /auth/oidc/exchange` for the person's tokens. Without
`return_to`, the callback answers the tokens itself (API clients).
"""

from typing import Any

from fastapi import APIRouter, Cookie, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from services.identity import oidc, sessions
from services.identity.audit import Origin, record_audit
from services.identity.routes import start_session, token_response
from services.identity.schemas import TokenResponse
from shared.db import SessionDep
from shared.errors import KnowflowError, Unauthorized
from shared.idempotency import IdempotentRoute
from shared.settings import Settings

router = APIRouter(route_class=IdempotentRoute)


class OidcProviderPublic(BaseModel):
    name: str
    display_name: str
    login_url: str  # where a browser starts signing in with this provider (`?return_to=`)


class HandoffExchange(BaseModel):
    code: str = Field(
        min_length=1,
        max_length=200,
        description="The `sso_code` the callback added to `return_to`",
    )


# What `sso_error` says, by the refusal's status (403's own detail is already for people).
SSO_ERRORS = {
    400: "The sign-in did not complete. Please try again.",
    401: "The identity provider did not confirm the sign-in.",
    404: "This identity provider is not configured.",
    503: "The identity provider cannot be reached. Please try again later.",
}


def providers_of(request: Request) -> oidc.OidcProviders:
    """The process's providers (made on first use: their discovery waits for a sign-in)."""
    state = request.app.state
    if getattr(state, "oidc_providers", None) is None:
        state.oidc_providers = oidc.OidcProviders(state.settings)
    providers: oidc.OidcProviders = state.oidc_providers
    return providers


@router.get("/auth/oidc/providers", tags=["auth"], summary="Identity providers to sign in with")
def list_providers(request: Request) -> list[OidcProviderPublic]:
    settings: Settings = request.app.state.settings
    base = settings.public_url.rstrip("/")
    return [
        OidcProviderPublic(
            name=config.name,
            display_name=config.display_name or config.name,
            login_url=f"{base}/api/v1/auth/oidc/{config.name}/login",
        )
        for config in settings.oidc_providers
    ]


@router.get(
    "/auth/oidc/{provider}/login",
    tags=["auth"],
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {"description": "To the provider's authorization endpoint, with a state cookie"},
        400: {"description": "`return_to` is not a path on this site"},
        404: {"description": "No such provider"},
        503: {"description": "The provider cannot be reached"},
    },
)
def oidc_login(
    provider: str,
    request: Request,
    return_to: str | None = Query(
        default=None,
        description=(
            "Where to send the browser back after signing in, with `sso_code` (or "
            "`sso_error`) added to its query: a path on this site (starts with `/`, not "
            f"`//`, no backslash nor control characters, at most {oidc.RETURN_TO_MAX_LENGTH} "
            "characters). Without it, the callback answers the tokens as JSON."
        ),
    ),
) -> RedirectResponse:
    """Start signing in with an OpenID Provider (authorization code flow with PKCE)."""
    settings: Settings = request.app.state.settings
    url, cookie = oidc.begin(providers_of(request), provider, return_to=return_to)
    response = RedirectResponse(url, status_code=status.HTTP_302_FOUND)
    response.headers["cache-control"] = "no-store"
    response.set_cookie(
        oidc.STATE_COOKIE,
        cookie,
        max_age=settings.oidc_state_ttl_seconds,
        httponly=True,
        # Lax: the provider's redirect back is a top-level GET, which carries it.
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
    )
    return response


@router.get(
    "/auth/oidc/{provider}/callback",
    tags=["auth"],
    response_model=TokenResponse,
    responses={
        200: {"description": "Signed in (a sign-in started without `return_to`)"},
        303: {
            "description": "A sign-in started with `return_to`: back there with `sso_code` "
            "(trade it at `POST /auth/oidc/exchange` within 60 s) or, when the sign-in "
            "failed, `sso_error` (a short reason for people)",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        400: {"description": "Not a sign-in this browser started (state), or no code"},
        401: {"description": "The provider refused, or its ID token does not verify"},
        403: {"description": "No verified e-mail to link or create an account, or deactivated"},
        404: {"description": "No such provider"},
        503: {"description": "The provider cannot be reached"},
    },
)
def oidc_callback(
    provider: str,
    request: Request,
    response: Response,
    session: SessionDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    iss: str | None = None,
    knowflow_oidc: str | None = Cookie(default=None, include_in_schema=False),
) -> Any:
    """Finish signing in: Knowflow tokens, or a hand-off code, for the person the provider
    vouches for."""
    providers = providers_of(request)
    origin = Origin.of(request)
    config = providers.check(provider).config
    # Known only once the state checks out: before that, no return_to can be trusted.
    pending: oidc.PendingSignIn | None = None
    try:
        pending = oidc.check_pending(
            providers.settings, name=provider, cookie=knowflow_oidc, state=state
        )
        if error:
            raise Unauthorized(f"the identity provider refused the sign-in ({error[:100]})")
        # RFC 9207: an answer naming another issuer is a mix-up attack.
        if iss is not None and iss != providers.check(provider).metadata().issuer:
            raise Unauthorized("the answer comes from another identity provider (iss)")
        claims = oidc.finish(providers, pending, code=code)
        user = oidc.sign_in(session=session, config=config, claims=claims, origin=origin)
    except KnowflowError as exc:
        session.rollback()
        _record_failure(request, provider=provider, reason=exc.detail, origin=origin)
        if pending is None or pending.return_to is None:
            raise
        reason = exc.detail if exc.status == 403 else SSO_ERRORS.get(exc.status, SSO_ERRORS[400])
        return _back_to(oidc.with_query(pending.return_to, "sso_error", reason[:200]))
    if pending.return_to is not None:
        code = sessions.do_create_handoff(
            session=session, user=user, method="sso", provider=provider
        )
        return _back_to(oidc.with_query(pending.return_to, "sso_code", code))
    response.delete_cookie(oidc.STATE_COOKIE)
    response.headers["cache-control"] = "no-store"
    return token_response(request, start_session(request, session, user, "sso"))


@router.post(
    "/auth/oidc/exchange",
    tags=["auth"],
    summary="Trade a single sign-on hand-off code for tokens",
    responses={
        400: {"description": "The code is unknown, already used or expired (60 s)"},
        403: {"description": "The account is deactivated"},
    },
)
def exchange_handoff(
    request: Request, body: HandoffExchange, session: SessionDep, response: Response
) -> TokenResponse:
    """Trade the `sso_code` a sign-in with `return_to` came back with for an access token and a
    refresh token (a new session), once."""
    settings: Settings = request.app.state.settings
    sign_in = sessions.do_exchange_handoff(
        session=session,
        code=body.code,
        ttl_seconds=settings.refresh_token_ttl_seconds,
        origin=Origin.of(request),
    )
    response.headers["cache-control"] = "no-store"
    return token_response(request, sign_in)


def _back_to(location: str) -> RedirectResponse:
    """303 to the web app's page; the sign-in is over, so its state cookie goes."""
    redirect = RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)
    redirect.delete_cookie(oidc.STATE_COOKIE)
    redirect.headers["cache-control"] = "no-store"
    # The code is in the URL: it must not travel on in a Referer.
    redirect.headers["referrer-policy"] = "no-referrer"
    return redirect


def _record_failure(request: Request, *, provider: str, reason: str, origin: Origin) -> None:
    """Audit a refused sign-in in its own transaction: the request's rolls back."""
    with Session(request.app.state.engine) as audit_session:
        record_audit(
            audit_session,
            action="sso.sign_in_failed",
            target=f"oidc:{provider}",
            actor_id=None,
            origin=origin,
            details={"provider": provider, "reason": reason[:500]},
        )
        audit_session.commit()
