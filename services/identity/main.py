"""The identity service: accounts, tokens and JWKS, profiles, groups, follows."""

from pathlib import Path

from fastapi import FastAPI

from services.identity.models import Follow, Group, Membership, User
from services.identity.routes import router
from shared.auth import TokenIssuer, TokenVerifier, load_or_create_private_key
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


async def start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    key = load_or_create_private_key(settings.jwt_private_key_file)
    issuer = TokenIssuer(
        key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    app.state.issuer = issuer
    # Identity verifies its own tokens with its own keys, without a round trip.
    app.state.verifier = TokenVerifier(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=issuer.jwks()
    )


SPEC = ServiceSpec(
    name="identity",
    title="Knowflow identity",
    description="Accounts and tokens, profiles, groups and memberships, follows.",
    routers=[router],
    tables=[User, Group, Membership, Follow],
    on_startup=start,
    migrations=Path(__file__).parent / "migrations",
    unstored_replies=frozenset({"/auth/login"}),
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
