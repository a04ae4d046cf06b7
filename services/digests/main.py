"""The digests service: periodic digests of what the people, tags and groups you follow produced."""

from pathlib import Path

from fastapi import FastAPI

from services.digests.consumers import digest_consumers
from services.digests.models import TABLES
from services.digests.routes import router
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="digests",
    title="Knowflow digests",
    description="Daily and weekly digests built from content, follow and group events.",
    routers=[router],
    tables=TABLES,
    consumers=digest_consumers,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
