"""The identity service: accounts, tokens and JWKS, profiles, groups, follows."""

from pathlib import Path

from fastapi import FastAPI

from services.identity.models import Follow, Group, Membership, MembershipVersion, User
from services.identity.routes import router
from shared.auth import KeyFiles, TokenIssuer, TokenVerifier
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
    routers=[router],
    tables=[User, Group, Membership, MembershipVersion, Follow],
    on_startup=start,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
