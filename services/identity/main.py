"""The identity service: accounts, tokens and JWKS, profiles, groups, follows."""

from pathlib import Path

from fastapi import FastAPI, Request, Response
from scim2_models import SCIMException

from services.identity import service
from services.identity.account_routes import router as account_router
from services.identity.audit import AuditEntry, AuditHead
from services.identity.consumers import consumers
from services.identity.directory_routes import router as directory_router
from services.identity.join_request_routes import router as join_request_router
from services.identity.models import (
    AuthSession,
    Erasure,
    ErasureReport,
    ExternalIdentity,
    Follow,
    Group,
    JoinRequest,
    Membership,
    MembershipVersion,
    PasswordReset,
    RefreshToken,
    ScimClient,
    ScimLink,
    SsoHandoff,
    User,
)
from services.identity.oidc_routes import router as oidc_router
from services.identity.passwords import PasswordHashingBusy
from services.identity.privacy_routes import router as privacy_router
from services.identity.provisioning import router as provisioning_router
from services.identity.role_routes import router as role_router
from services.identity.routes import router
from services.identity.scim.routes import on_scim_error
from services.identity.scim.routes import router as scim_router
from services.identity.session_routes import router as session_router
from shared.auth import KeyFiles, TokenIssuer, TokenVerifier
from shared.errors import problem_response
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


async def start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    if settings.access_token_ttl_seconds > settings.access_token_max_lifetime_seconds:
        raise ValueError("access_token_ttl_seconds exceeds access_token_max_lifetime_seconds")
    issuer = TokenIssuer(
        KeyFiles(settings.jwt_private_key_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    app.state.issuer = issuer
    service.password_hasher.configure(
        concurrency=settings.password_hash_concurrency,
        queue=settings.password_hash_queue,
        wait=settings.password_hash_wait_seconds,
    )
    # Identity verifies its own tokens with its own keys (rotations included), no round trip.
    app.state.verifier = TokenVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        jwks_source=issuer.jwks,
        max_lifetime_seconds=settings.access_token_max_lifetime_seconds,
        leeway_seconds=settings.jwt_leeway_seconds,
        refetch_seconds=settings.jwks_refetch_seconds,
    )


SPEC = ServiceSpec(
    name="identity",
    title="Knowflow identity",
    description="Accounts and tokens, profiles, groups and memberships, follows.",
    # Privacy first: its `/users/erasure-report` and `/users/me/...` are not `/users/{user_id}`.
    routers=[
        privacy_router,
        join_request_router,
        directory_router,
        router,
        role_router,
        session_router,
        account_router,
        oidc_router,
        provisioning_router,
        scim_router,
    ],
    tables=[
        *(User, Group, Membership, MembershipVersion, Follow, AuditEntry, AuditHead),
        *(AuthSession, RefreshToken, PasswordReset),
        *(ExternalIdentity, ScimClient, ScimLink, Erasure, ErasureReport),
        SsoHandoff,
        JoinRequest,
    ],
    consumers=consumers,
    on_startup=start,
    migrations=Path(__file__).parent / "migrations",
    # Replies carrying tokens are never stored (an Idempotency-Key would keep a copy).
    unstored_replies=frozenset(
        {"/auth/login", "/auth/refresh", "/auth/oidc/exchange", "/scim-clients"}
    ),
)


async def on_hashing_busy(request: Request, exc: Exception) -> Response:
    """503 with Retry-After: the client should come back in a moment, not give up."""
    assert isinstance(exc, PasswordHashingBusy)
    response = problem_response(exc.status, exc.detail, instance=request.url.path)
    response.headers["retry-after"] = "1"
    return response


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    app = create_service_app(SPEC, settings=settings, verifier=verifier)
    app.add_exception_handler(PasswordHashingBusy, on_hashing_busy)
    app.add_exception_handler(SCIMException, on_scim_error)
    return app


app = create_app()
