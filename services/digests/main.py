"""The digests service: periodic digests of what the people, tags and groups you follow produced."""

from pathlib import Path

from fastapi import FastAPI

from services.digests.consumers import digest_consumers
from services.digests.feed_routes import router as feed_router
from services.digests.models import TABLES
from services.digests.routes import admin_router, router
from services.digests.scheduler import start, stop
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="digests",
    title="Knowflow digests",
    description=(
        "Daily and weekly digests built from content, follow and group events, "
        "sent on a schedule as `knowflow.digest.ready.v1` events."
    ),
    routers=[router, admin_router, feed_router],
    tables=TABLES,
    consumers=digest_consumers,
    on_startup=start,  # the digest schedule
    on_shutdown=stop,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
