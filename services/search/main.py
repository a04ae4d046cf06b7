"""The search service: content search and "who knows about X", fed by events."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from services.search.consumers import consumers
from services.search.engines import OPENSEARCH, engine_factory, engine_name, opensearch_engine
from services.search.engines import prepare_engine as prepare_search_engine
from services.search.models import (
    SearchAcceptance,
    SearchGroup,
    SearchItemScore,
    SearchMembership,
    SearchSkill,
    SearchThanks,
    SearchUser,
)
from services.search.routes import router
from services.search.routing import escalation
from services.search.routing.consumers import routing_consumers
from services.search.routing.models import TABLES as ROUTING_TABLES
from services.search.routing.routes import router as routing_router
from services.search.routing.settings import RoutingSettings
from services.search.semantic.models import SearchVector
from services.search.semantic.service import details as semantic_details
from services.search.semantic.service import semantic_for
from services.search.semantic.service import start as semantic_start
from services.search.semantic.service import stop as semantic_stop
from services.search.topic_routes import router as topic_router
from shared.auth import TokenVerifier
from shared.events.consumer import Consumer
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


async def start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    # Fails the start (not the first request) when the configured engine cannot run.
    app.state.engine_factory = engine_factory(settings)
    await asyncio.to_thread(prepare_search_engine, settings, app.state.engine)
    await semantic_start(app)
    await escalation.start(app, RoutingSettings())


async def stop(app: FastAPI) -> None:
    await escalation.stop(app)
    await semantic_stop(app)


def all_consumers(settings: Settings) -> Sequence[Consumer]:
    """Content and projections, then routing (which ranks through the same engine)."""
    routing = routing_consumers(engine_factory(settings), RoutingSettings(), semantic_for(settings))
    return (*consumers(settings), *routing)


async def check_search_engine(app: FastAPI) -> None:
    """OpenSearch answers and the content alias exists (the embedded index is the DB)."""
    settings: Settings = app.state.settings
    if engine_name(settings) == OPENSEARCH:
        engine = opensearch_engine(settings.search_url, settings.search_index_prefix)
        await asyncio.to_thread(engine.ping)


SPEC = ServiceSpec(
    name="search",
    title="Knowflow search",
    description="Search over posts, replies and articles; who knows about a topic.",
    routers=[router, routing_router, topic_router],
    # The content index is the engine's own storage (see engines/), prepared at start.
    tables=[
        SearchUser,
        SearchGroup,
        SearchMembership,
        SearchThanks,
        SearchItemScore,
        SearchAcceptance,
        SearchSkill,
        SearchVector,
        *ROUTING_TABLES,
    ],
    consumers=all_consumers,
    on_startup=start,
    on_shutdown=stop,
    readiness_checks=[check_search_engine],
    readiness_details=semantic_details,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
