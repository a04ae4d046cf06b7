"""The posts service: flow posts and replies, stock articles with revisions, visibility."""

from pathlib import Path

import httpx
from fastapi import FastAPI

from services.posts.access import IDENTITY_TIMEOUT_SECONDS
from services.posts.answer_routes import router as answer_router
from services.posts.consumers import consumers
from services.posts.models import (
    Answer,
    Article,
    ArticleRevision,
    Comment,
    ContentTag,
    KnownGroup,
    KnownMembership,
    Post,
    QARevision,
    Question,
    Reaction,
    Vote,
)
from services.posts.moderation_routes import router as moderation_router
from services.posts.privacy_routes import router as privacy_router
from services.posts.question_routes import router as question_router
from services.posts.routes import router
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


async def start(app: FastAPI) -> None:
    # One pooled client for read-your-writes checks against identity.
    app.state.identity_http = httpx.Client(timeout=IDENTITY_TIMEOUT_SECONDS)


async def stop(app: FastAPI) -> None:
    app.state.identity_http.close()


SPEC = ServiceSpec(
    name="posts",
    title="Knowflow posts",
    description=(
        "Flow posts and replies, stock articles with revisions, questions and answers, "
        "group visibility."
    ),
    routers=[router, question_router, answer_router, privacy_router, moderation_router],
    tables=[
        Post,
        Article,
        ArticleRevision,
        ContentTag,
        KnownGroup,
        KnownMembership,
        Reaction,
        Question,
        Answer,
        Comment,
        QARevision,
        Vote,
    ],
    consumers=consumers,
    on_startup=start,
    on_shutdown=stop,
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


app = create_app()
