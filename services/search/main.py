"""The search service: content search and "who knows about X", fed by events."""

from pathlib import Path

from fastapi import FastAPI

from services.search.consumers import consumers
from services.search.engines import engine_factory, prepare_engine
from services.search.models import SearchGroup, SearchMembership, SearchUser
from services.search.routes import router
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


async def start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    # Fails the start (not the first request) when the configured engine cannot run.
    app.state.engine_factory = engine_factory(settings)
    prepare_engine(settings, app.state.engine)


SPEC = ServiceSpec(
    name="search",
    title="Knowflow search",
    description="Search over posts, replies and articles; who knows about a topic.",
    routers=[router],
    # The content index is the engine's own storage (see engines/), prepared at start.
    tables=[SearchUser, SearchGroup, SearchMembership],
    consumers=consumers,
    on_startup=start,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
