"""The identity service: accounts, tokens and JWKS, profiles, groups, follows."""

from fastapi import FastAPI

from services.identity.models import Follow, Group, Membership, User
from services.identity.routes import router
from shared.auth import TokenIssuer, TokenVerifier, load_or_create_private_key
from shared.settings import Settings, get_settings
from shared.web import ServiceSpec, create_service_app


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def start(app: FastAPI) -> None:
        key = load_or_create_private_key(settings.jwt_private_key_file)
        issuer = TokenIssuer(
            key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        )
        app.state.issuer = issuer
        # Identity verifies its own tokens with its own keys, without a round trip.
        if verifier is None:
            app.state.verifier = TokenVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=issuer.jwks()
            )

    spec = ServiceSpec(
        name="identity",
        title="Knowflow identity",
        description="Accounts and tokens, profiles, groups and memberships, follows.",
        routers=[router],
        tables=[User, Group, Membership, Follow],
        on_startup=start,
    )
    return create_service_app(spec, settings=settings, verifier=verifier)


app = create_app()
