"""The digests service: periodic digests of what the people, tags and groups you follow produced."""

from fastapi import FastAPI

from services.digests.consumers import digest_consumers
from services.digests.models import TABLES
from services.digests.routes import router
from shared.auth import TokenVerifier
from shared.settings import Settings, get_settings
from shared.web import ServiceSpec, create_service_app


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    settings = settings or get_settings()
    spec = ServiceSpec(
        name="digests",
        title="Knowflow digests",
        description="Daily and weekly digests built from content, follow and group events.",
        routers=[router],
        tables=TABLES,
        consumers=digest_consumers,
    )
    return create_service_app(spec, settings=settings, verifier=verifier)


app = create_app()
