"""Expertise search: who knows about a topic, ranked by visible, explainable evidence."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    People,
    article,
    deleted,
    post,
    registered,
    reply,
    settle_content,
)
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for


def ranking(client: TestClient, headers: dict[str, str], topic: str) -> list[dict[str, Any]]:
    response = client.get("/experts", params={"topic": topic}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["topic"] == topic
    found: list[dict[str, Any]] = body["experts"]
    return found


def test_articles_and_answers_outrank_a_single_post_and_show_as_evidence(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    alice, bob, asker = new_id(), new_id(), new_id()
    question = post(title="Kubernetes ingress?", body="How do I expose a service", author_id=asker)
    answer = reply(thread=question, body="Use an ingress controller with TLS", author_id=alice)
    write_up = article(title="Ingress", body="A guide", tags=["kubernetes"], author_id=alice)
    mention = post(body="I tried kubernetes once", author_id=bob)
    publish_events(registered(alice, "alice"), registered(bob, "bob"))
    settle_content(search_client, me, publish_events, question, answer, write_up, mention)
    wait_for(lambda: ranking(search_client, me, "kubernetes")[0]["handle"] == "alice")

    ranked = ranking(search_client, me, "kubernetes")

    assert ranked[0]["user_id"] == str(alice)
    # The asker's question (the word in its title) matches better than bob's mention.
    assert [e["user_id"] for e in ranked[1:]] == [str(asker), str(bob)]
    top = ranked[0]
    assert top["display_name"] == "Alice"
    evidence = [item["content_id"] for item in top["evidence"]]
    # The tagged article (text and tag match) before the answer (its thread's text match).
    assert evidence == [str(write_up.content_id), str(answer.content_id)]
    assert top["evidence"][0]["weight"] > top["evidence"][1]["weight"]
    # Answered within a day of the question: a quarter more; one answer this month: twice.
    assert "1 of 1 answers within a day" in top["why"]
    assert "1 answer in the last 30 days" in top["why"]
    assert abs(top["score"] - 2.5 * sum(item["weight"] for item in top["evidence"])) < 1e-2
    assert top["evidence"][0]["kind"] == "article" and top["evidence"][0]["title"] == "Ingress"
    assert "tags kubernetes" in top["evidence"][0]["why"]
    assert top["why"].startswith("2 answers on the topic")
    bob_entry = next(e for e in ranked if e["user_id"] == str(bob))
    assert "<mark>kubernetes</mark>" in bob_entry["evidence"][0]["snippet"]


def test_recent_evidence_outweighs_the_same_evidence_a_year_old(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    veteran, newcomer = new_id(), new_id()
    old = post(
        body="terraform modules", author_id=veteran, created_at=utcnow() - timedelta(days=365)
    )
    new = post(body="terraform state", author_id=newcomer)
    settle_content(search_client, me, publish_events, old, new)

    ranked = ranking(search_client, me, "terraform")

    assert [e["user_id"] for e in ranked] == [str(newcomer), str(veteran)]
    # 365 days at a one-year half-life: half the weight.
    assert abs(ranked[1]["score"] / ranked[0]["score"] - 0.5) < 1e-3


def test_a_tag_on_the_topic_weighs_more_than_a_mention(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    tagger, mentioner = new_id(), new_id()
    tagged = post(body="ownership and borrowing", tags=["Rust"], author_id=tagger)
    mentioned = post(body="rust is nice", author_id=mentioner)
    settle_content(search_client, me, publish_events, mentioned, tagged)

    ranked = ranking(search_client, me, "rust")

    assert [e["user_id"] for e in ranked] == [str(tagger), str(mentioner)]
    assert ranked[0]["score"] > 2 * ranked[1]["score"]  # the tag, and the tags field's text
    assert "tags rust" in ranked[0]["evidence"][0]["why"]


def test_evidence_is_capped_and_deleted_items_stop_counting(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    prolific = new_id()
    items = [post(body=f"elixir note {i}", author_id=prolific) for i in range(5)]
    settle_content(search_client, me, publish_events, *items)
    before = ranking(search_client, me, "elixir")[0]
    assert len(before["evidence"]) == 3

    settle_content(
        search_client, me, publish_events, *(deleted(item, version=2) for item in items[:4])
    )
    after = ranking(search_client, me, "elixir")[0]

    assert [item["content_id"] for item in after["evidence"]] == [str(items[4].content_id)]
    assert abs(after["score"] - before["score"] / 5) < 1e-3
    settle_content(search_client, me, publish_events, deleted(items[4], version=2))
    assert ranking(search_client, me, "elixir") == []
