"""Routing test fixtures and helpers: the search service on real NATS with a controllable schedule."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from services.search.engines import EngineFactory
from services.search.main import SPEC
from services.search.models import SearchMembership, SearchUser
from services.search.routing.escalation import escalate_due
from services.search.routing.models import RoutingQuestion
from services.search.routing.service import RoundReport
from services.search.routing.settings import RoutingSettings
from services.search.tests.conftest import post, search_ids
from shared.auth import TokenIssuer, TokenVerifier
from shared.events.consumer import ProcessedEvent
from shared.events.contracts import (
    AnswerCreated,
    GroupCreated,
    GroupMemberAdded,
    GroupVisibility,
    QuestionCreated,
)
from shared.events.envelope import EventData
from shared.ids import new_id, utcnow
from shared.settings import Settings
from shared.testing.backends import fresh_database
from shared.testing.fixtures import wait_for
from shared.web import create_service_app

Headers = dict[str, str]
ROUTED_SUBJECT = "events.restricted.question.routed.v1"


StartSearch = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def start_search(
    tmp_path: Path,
    nats_url: str,
    token_issuer: TokenIssuer,
    engine_settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[StartSearch]:
    """`with start_search() as client:` — the same database every time (a restart)."""
    monkeypatch.setenv("KNOWFLOW_ROUTING_SCHEDULE_ENABLED", "false")
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_database(tmp_path, "search"))

        @contextmanager
        def run(**routing_env: str) -> Iterator[TestClient]:
            for name, value in routing_env.items():
                monkeypatch.setenv(f"KNOWFLOW_ROUTING_{name.upper()}", value)
            settings = Settings(
                service_name="search",
                database_url=database_url,
                nats_url=nats_url,
                jwt_private_key_file=tmp_path / "jwt.pem",
                log_json=False,
                **engine_settings,  # type: ignore[arg-type]
            )
            verifier = TokenVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=token_issuer.jwks()
            )
            app = create_service_app(SPEC, settings=settings, verifier=verifier)
            with TestClient(app, raise_server_exceptions=False) as client:
                yield client

        yield run


@pytest.fixture
def client(start_search: StartSearch) -> Iterator[TestClient]:
    with start_search() as running:
        yield running


def app_of(client: TestClient) -> FastAPI:
    app: FastAPI = client.app  # type: ignore[assignment]
    return app


def db(client: TestClient) -> Engine:
    engine: Engine = app_of(client).state.engine
    return engine


def engines_of(client: TestClient) -> EngineFactory:
    factory: EngineFactory = app_of(client).state.engine_factory
    return factory


def processed(client: TestClient, consumer: str) -> int:
    with Session(db(client)) as session:
        query = select(func.count()).where(ProcessedEvent.consumer == consumer)
        return int(session.exec(query).one())


class Publisher:
    """Publishes events and waits until each consumer that cares has applied them."""

    def __init__(self, client: TestClient, publish_events: Callable[..., None]) -> None:
        self.client = client
        self.publish_events = publish_events
        self.counts: dict[str, int] = {}

    def __call__(self, *events: EventData) -> None:
        expected = dict(self.counts)
        for event in events:
            for consumer in app_of(self.client).state.consumer_runners:
                if type(event) in consumer.consumer.event_types:
                    durable = consumer.consumer.durable
                    expected[durable] = expected.get(durable, 0) + 1
        self.publish_events(*events)
        wait_for(
            lambda: all(processed(self.client, d) >= c for d, c in expected.items()), timeout=20
        )
        self.counts = expected


@pytest.fixture
def publish(client: TestClient, publish_events: Callable[..., None]) -> Publisher:
    return Publisher(client, publish_events)


def evidence(author: UUID, count: int, *, tag: str, group_id: UUID | None = None) -> list[Any]:
    """`count` posts on `tag` by `author` (more posts: a higher expert score)."""
    return [
        post(
            title=f"notes {index}",
            body=f"what I learned about {tag}",
            author_id=author,
            tags=[tag],
            group_id=group_id,
        )
        for index in range(count)
    ]


def question(
    asker: UUID,
    *,
    tags: list[str],
    title: str = "How do I validate a datum?",
    body: str = "My validator rejects every transaction.",
    group_id: UUID | None = None,
    created_at: datetime | None = None,
) -> QuestionCreated:
    created = created_at or utcnow()
    question_id = new_id()
    return QuestionCreated(
        content_id=question_id,
        kind="question",
        author_id=asker,
        group_id=group_id,
        visibility="private" if group_id else "public",
        version=1,
        title=title,
        body=body,
        tags=tags,
        mentions=[],
        parent_id=None,
        thread_id=question_id,
        created_at=created,
        updated_at=created,
    )


def answer(to: QuestionCreated, author: UUID) -> AnswerCreated:
    now = utcnow()
    return AnswerCreated(
        content_id=new_id(),
        kind="answer",
        author_id=author,
        group_id=to.group_id,
        visibility=to.visibility,
        version=1,
        title=None,
        body="Check the redeemer.",
        tags=[],
        mentions=[],
        parent_id=to.content_id,
        thread_id=to.content_id,
        created_at=now,
        updated_at=now,
    )


def group_with(
    owner: UUID, *members: UUID, visibility: GroupVisibility = "private"
) -> tuple[UUID, list[EventData]]:
    group_id = new_id()
    events: list[EventData] = [
        GroupCreated(
            group_id=group_id, visibility=visibility, slug="core", name="Core team", owner_id=owner
        ),
        *[
            GroupMemberAdded(
                group_id=group_id, visibility=visibility, user_id=user, role="member", version=1
            )
            for user in members
        ],
    ]
    return group_id, events


def members_known(client: TestClient, group_id: UUID, count: int) -> bool:
    with Session(db(client)) as session:
        query = select(func.count()).where(
            SearchMembership.group_id == group_id, col(SearchMembership.is_member).is_(True)
        )
        return int(session.exec(query).one()) >= count


def users_known(client: TestClient, count: int) -> bool:
    with Session(db(client)) as session:
        return int(session.exec(select(func.count()).select_from(SearchUser)).one()) >= count


def routed_question(client: TestClient, question_id: UUID) -> RoutingQuestion | None:
    with Session(db(client)) as session:
        return session.get(RoutingQuestion, question_id)


def routing(client: TestClient, headers: Headers, question_id: UUID) -> dict[str, Any]:
    response = client.get(f"/routing/questions/{question_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def asked_in_round(body: dict[str, Any], number: int) -> list[str]:
    [chosen] = [round_ for round_ in body["rounds"] if round_["round"] == number]
    return [person["user_id"] for person in chosen["people"]]


def escalate(client: TestClient, *, after: timedelta, **settings: Any) -> list[RoundReport]:
    """Run the escalation schedule once, `after` from now (the controllable clock)."""
    return escalate_due(
        engine=db(client),
        engines=engines_of(client),
        now=utcnow() + after,
        settings=RoutingSettings(**settings),
        semantic=app_of(client).state.semantic,
    )


def settle(client: TestClient, headers: Headers, publish: Publisher, *events: EventData) -> None:
    """Publish content and wait until the index shows it (OpenSearch refreshes in ~1 s)."""
    marker = f"marker{new_id().hex}"
    publish(*events, post(body=marker))
    wait_for(lambda: search_ids(client, headers, marker), timeout=20)


@pytest.fixture
def admin_header(token_issuer: TokenIssuer) -> Headers:
    token = token_issuer.issue(user_id=new_id(), handle="root", is_admin=True)
    return {"Authorization": f"Bearer {token}"}
