"""Single sign-on endpoints: the providers, the redirect to one, and its callback."""

from fastapi import APIRouter, Cookie, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from sqlmodel import Session

from services.identity import oidc
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
    login_url: str  # where a browser starts signing in with this provider


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
        404: {"description": "No such provider"},
        503: {"description": "The provider cannot be reached"},
    },
)
def oidc_login(provider: str, request: Request) -> RedirectResponse:
    """Start signing in with an OpenID Provider (authorization code flow with PKCE)."""
    settings: Settings = request.app.state.settings
    url, cookie = oidc.begin(providers_of(request), provider)
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
    responses={
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
) -> TokenResponse:
    """Finish signing in: Knowflow tokens for the person the provider vouches for."""
    providers = providers_of(request)
    origin = Origin.of(request)
    config = providers.check(provider).config
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
        raise
    response.delete_cookie(oidc.STATE_COOKIE)
    response.headers["cache-control"] = "no-store"
    return token_response(request, start_session(request, session, user, "sso"))


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
