"""Similar questions for a draft, through HTTP and real NATS, in both engines."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    Headers,
    People,
    answer_to,
    deleted,
    post,
    question,
    settle_content,
)
from shared.events.contracts import QuestionUpdated
from shared.ids import new_id, utcnow


def similar(client: TestClient, headers: Headers, **draft: Any) -> list[dict[str, Any]]:
    response = client.post("/questions/similar", json=draft, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def similar_ids(client: TestClient, headers: Headers, **draft: Any) -> list[str]:
    return [item["question_id"] for item in similar(client, headers, **draft)]


def test_the_same_question_in_other_words_is_suggested_first_with_a_highlighted_snippet(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    same = question(
        title="How to delegate ADA to a stake pool from Daedalus?",
        body="I want to delegate my ADA <b>from</b> the Daedalus wallet to a stake pool.",
        tags=["delegation", "daedalus"],
    )
    other = question(title="What is a Plutus script?", body="Explain Plutus scripts")
    settle_content(search_client, me, publish_events, same, other)

    items = similar(
        search_client,
        me,
        title="Delegating my ada to a pool with the Daedalus wallet",
        body="Which steps delegate ada to a pool?",
    )

    assert [item["question_id"] for item in items] == [str(same.content_id)]
    found = items[0]
    assert found["title"] == same.title
    assert "<mark>" in found["snippet"] and "&lt;b&gt;" in found["snippet"]
    assert found["tags"] == ["daedalus", "delegation"]
    assert found["has_accepted_answer"] is False
    assert found["duplicate_of"] is None
    assert found["visibility"] == "public" and found["score"] > 0


def test_only_questions_are_suggested_not_answers_comments_or_posts(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    asked = question(title="Qubit decoherence times", body="How long do qubits stay coherent?")
    answered = answer_to(asked, body="Qubit decoherence times are microseconds")
    note = post(title="Qubit decoherence times", body="qubit decoherence notes")
    settle_content(search_client, me, publish_events, asked, answered, note)

    assert similar_ids(search_client, me, title="qubit decoherence times") == [
        str(asked.content_id)
    ]


def test_a_title_match_outranks_a_body_match_and_shared_tags_boost(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    in_title = question(title="Grover search oracle", body="Building one for three qubits")
    in_body = question(title="Circuit question", body="My grover search oracle fails")
    tagged = question(
        title="Circuit question", body="My grover search oracle fails", tags=["grover"]
    )
    settle_content(search_client, me, publish_events, in_title, in_body, tagged)

    ranked = similar_ids(search_client, me, title="grover search oracle", tags=["Grover"])

    assert ranked == [str(in_title.content_id), str(tagged.content_id), str(in_body.content_id)]


def test_a_shared_tag_alone_suggests_nothing(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    settle_content(
        search_client, me, publish_events, question(title="Unrelated", body="x", tags=["shor"])
    )

    assert similar(search_client, me, title="completely different words", tags=["shor"]) == []


def test_body_words_find_a_question_whose_title_words_differ(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    target = question(title="Transaction stuck", body="cardano-cli submit says BadInputsUTxO")
    settle_content(search_client, me, publish_events, target)

    ranked = similar_ids(
        search_client, me, title="Help please", body="cardano-cli fails with BadInputsUTxO"
    )

    assert ranked == [str(target.content_id)]


def test_acceptance_and_duplicate_links_follow_question_updates_and_deletes_hide_it(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    original = question(title="Minting native tokens", body="How do I mint native tokens?")
    dup = question(title="Mint native tokens how", body="minting tokens natively")
    answer = answer_to(original, body="Use a minting policy")
    settle_content(search_client, me, publish_events, original, dup, answer)

    def as_updated(asked: Any, **changes: Any) -> QuestionUpdated:
        data = asked.model_dump()
        data.update(version=2, updated_at=utcnow(), **changes)
        return QuestionUpdated(**data)

    settle_content(
        search_client,
        me,
        publish_events,
        as_updated(original, accepted_answer_id=answer.content_id),
        as_updated(dup, duplicate_of=original.content_id),
    )
    items = {
        item["question_id"]: item
        for item in similar(search_client, me, title="minting native tokens")
    }
    assert items[str(original.content_id)]["has_accepted_answer"] is True
    assert items[str(original.content_id)]["duplicate_of"] is None
    assert items[str(dup.content_id)]["has_accepted_answer"] is False
    assert items[str(dup.content_id)]["duplicate_of"] == str(original.content_id)

    settle_content(search_client, me, publish_events, deleted(dup, version=3))
    assert similar_ids(search_client, me, title="minting native tokens") == [
        str(original.content_id)
    ]


def test_the_limit_caps_the_suggestions_best_first(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    asked = [question(title=f"Shor algorithm period finding {'step ' * i}") for i in range(8)]
    settle_content(search_client, me, publish_events, *asked)

    items = similar(search_client, me, title="shor period finding", limit=3)
    default = similar(search_client, me, title="shor period finding")

    assert len(items) == 3 and len(default) == 5
    scores = [item["score"] for item in default]
    assert scores == sorted(scores, reverse=True)


def test_a_bad_draft_is_a_client_error_as_problem_json(
    search_client: TestClient, people: People
) -> None:
    me = people.header(new_id())
    for draft, status in (
        ({"title": "!!! ???"}, 400),
        ({"title": ""}, 422),
        ({}, 422),
        ({"title": "x", "extra": 1}, 422),
        ({"title": "x", "limit": 21}, 422),
        ({"title": "x", "limit": 0}, 422),
        ({"title": "x", "tags": ["no spaces allowed"]}, 422),
        ({"title": "x", "body": "y" * 30_001}, 422),
        ({"title": "x" * 301}, 422),
    ):
        response = search_client.post("/questions/similar", json=draft, headers=me)
        assert response.status_code == status, (draft, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
