"""Meaning as a feature of expert ranking (issue 12): `/experts` and routing, both engines.

The real model embeds every item through the `search-embeddings` consumer; people are
ranked through the service's HTTP API (and routing through its consumer). A person's
affinity is read only from answers the caller (for routing: every reader) may see.
"""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from services.search import service
from services.search.engines.base import Expert, ExpertQuery
from services.search.engines.expertise import MEANING_BONUS, MEANING_WEIGHT, with_meaning
from services.search.semantic.service import Semantic
from services.search.tests.conftest import (
    Headers,
    People,
    answer_to,
    joined,
    question,
    registered,
    settle_content,
)
from services.search.tests.test_semantic import embedded
from shared.auth import Principal
from shared.ids import new_id
from shared.testing.fixtures import wait_for

# No content word in common with the question: only meaning connects them.
QUESTION = "how can I make my laptop battery last longer"
ON_TOPIC = "Dim the screen and close background apps: the notebook keeps its charge for hours"
OFF_TOPIC = "I prefer the blue case, it looks nicer on the desk"


def experts(client: TestClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/experts", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["experts"]
    return found


def two_answerers(
    client: TestClient, headers: Headers, publish_events: Callable[..., None]
) -> tuple[UUID, UUID]:
    """One thread, two answers: (off-topic author, on-topic author), both embedded.

    The off-topic author has the smaller id, so a tie puts them first."""
    off, on = new_id(), new_id()
    asked = question(title="Laptop battery", body="Mine is new")
    settle_content(
        client,
        headers,
        publish_events,
        asked,
        answer_to(asked, body=OFF_TOPIC, author_id=off),
        answer_to(asked, body=ON_TOPIC, author_id=on),
    )
    embedded(client, headers, publish_events)
    return off, on


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [entry["user_id"] for entry in found]


def test_someone_who_answered_in_other_words_is_found_by_meaning(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    knower = new_id()
    asked = question(title="Notebook power", body="It drains in an hour")
    publish_events(registered(knower, "knower"))
    settle_content(
        semantic_client,
        me,
        publish_events,
        asked,
        answer_to(asked, body=ON_TOPIC, author_id=knower),
    )
    embedded(semantic_client, me, publish_events)
    # People are a projection of their own, consumed apart from content: wait for the handle.
    wait_for(lambda: any(e["handle"] == "knower" for e in experts(semantic_client, me, q=QUESTION)))

    found = experts(semantic_client, me, q=QUESTION)

    assert str(knower) in ids(found)
    entry = next(e for e in found if e["user_id"] == str(knower))
    assert entry["handle"] == "knower"
    assert "close in meaning to 1 of your answer" in entry["why"]
    # A bare topic is read for meaning too.
    assert str(knower) in ids(experts(semantic_client, me, topic="laptop battery"))


def test_meaning_ranks_the_on_topic_answerer_above_an_equal_off_topic_one(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    off, on = two_answerers(semantic_client, me, publish_events)

    found = experts(semantic_client, me, q=QUESTION)
    without = keyword_only(semantic_client, QUESTION)

    # Words alone: both answers inherit the thread's match, so they tie.
    scores = {expert.user_id: expert.score for expert in without}
    assert scores[off] == scores[on]
    # By meaning, the answer about the battery wins.
    ranked = [user for user in ids(found) if user in (str(off), str(on))]
    assert ranked == [str(on), str(off)]


def test_a_private_groups_answers_give_no_affinity_to_a_non_member(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    member, outsider, insider = new_id(), new_id(), new_id()
    group = new_id()
    publish_events(joined(group, member), joined(group, insider))
    inside = question(title="Notebook power", body="It drains in an hour", group_id=group)
    settle_content(
        semantic_client,
        people.header(member),
        publish_events,
        inside,
        answer_to(inside, body=ON_TOPIC, author_id=insider),
    )
    embedded(semantic_client, people.header(member), publish_events)

    assert str(insider) in ids(experts(semantic_client, people.header(member), q=QUESTION))
    found = experts(semantic_client, people.header(outsider), q=QUESTION)
    assert str(insider) not in ids(found)
    assert not any("meaning" in entry["why"] for entry in found)
    assert experts(semantic_client, people.header(outsider), topic="battery") == []


def test_without_the_model_the_ranking_is_the_engines(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = new_id()
    headers = people.header(me)
    two_answerers(semantic_client, headers, publish_events)
    app: FastAPI = semantic_client.app  # type: ignore[assignment]
    query = ExpertQuery.parse(QUESTION)
    principal = Principal(user_id=me, handle="me", is_admin=False)
    with Session(app.state.engine) as session:
        engine = app.state.engine_factory(session)
        direct = engine.experts(
            query,
            [],
            10,
            signals=lambda content_ids: service.count_signals(
                session=session, content_ids=content_ids
            ),
            priors=service.list_priors(session=session, query=query, groups=[]),
        )
        ranked = service.find_experts(
            session=session,
            engine=engine,
            principal=principal,
            topic=query,
            text=QUESTION,
            limit=10,
            semantic=Semantic(None, "turned off", None),
        )
        with_model = service.find_experts(
            session=session,
            engine=engine,
            principal=principal,
            topic=query,
            text=QUESTION,
            limit=10,
            semantic=app.state.semantic,
        )
    assert [expert for expert, _user in ranked] == direct
    assert [expert for expert, _user in with_model] != direct  # the model is on: it differs


def keyword_only(client: TestClient, text: str) -> list[Expert]:
    """The ranking without the model (the same service and data, meaning off), as anyone."""
    app: FastAPI = client.app  # type: ignore[assignment]
    with Session(app.state.engine) as session:
        ranked = service.find_experts(
            session=session,
            engine=app.state.engine_factory(session),
            principal=Principal(user_id=new_id(), handle="x", is_admin=False),
            topic=ExpertQuery.parse(text),
            text=text,
            limit=100,
            semantic=Semantic(None, "turned off", None),
        )
    return [expert for expert, _user in ranked]


# --- the combination itself (pure) -----------------------------------------------------


def person(user_id: UUID, score: float, why: str = "1 answer on the topic") -> Expert:
    return Expert(user_id=user_id, score=score, why=why)


def test_meaning_multiplies_by_a_bounded_factor_and_lets_in_the_closest() -> None:
    low, high, newcomer, far = (UUID(int=n) for n in (1, 2, 3, 4))
    ranked = with_meaning(
        [person(low, 2.0), person(high, 1.5)],
        {low: 0.30, high: 0.65, newcomer: 0.65, far: 0.33},
        {high: 2, newcomer: 1, far: 1},
        floor=0.35,
        limit=10,
    )
    by_id = {expert.user_id: expert for expert in ranked}
    # Below the floor: no evidence, unchanged (and not let in).
    assert by_id[low] == person(low, 2.0)
    assert far not in by_id
    # The closest person: doubled (the bound), and the reason says so.
    assert by_id[high].score == 1.5 * (1 + MEANING_BONUS)
    assert "close in meaning to 2 of your answers" in by_id[high].why
    assert by_id[high].why.startswith("1 answer on the topic; ")
    assert by_id[high].close == 2
    # No keyword evidence but close in meaning: in, at a prior's worth times the factor.
    assert by_id[newcomer].score == MEANING_WEIGHT * (1 + MEANING_BONUS)
    assert [expert.user_id for expert in ranked] == [high, low, newcomer]


def test_without_affinity_nothing_changes() -> None:
    experts = [person(UUID(int=2), 3.0), person(UUID(int=1), 1.0)]
    assert with_meaning(experts, {}, {}, floor=0.35, limit=10) == experts
    assert with_meaning(experts, {}, {}, floor=0.35, limit=1) == experts[:1]
