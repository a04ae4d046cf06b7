"""Routing asks people whose answers are close in meaning, on what every reader may see.

The real model embeds through the `search-embeddings` consumer (the publisher waits for
it); the question is routed by the routing consumer.
"""

from collections import Counter
from datetime import timedelta

from fastapi.testclient import TestClient

from services.search.routing.ranking import explain
from services.search.tests.conftest import People, answer_to, registered, require_embedding_model
from services.search.tests.routing.conftest import (
    Publisher,
    asked_in_round,
    group_with,
    members_known,
    question,
    routed_question,
    routing,
)
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

# No content word in common with the question: only meaning connects them.
TITLE = "How can I make my laptop battery last longer"
ON_TOPIC = "Dim the screen and close background apps: the notebook keeps its charge for hours"
EARLIER = utcnow() - timedelta(days=2)  # history: remembered, not routed itself


def test_routing_finds_answerers_by_meaning_only_in_the_questions_audience(
    client: TestClient, publish: Publisher, people: People
) -> None:
    require_embedding_model()
    asker, insider, knower, owner = (new_id() for _ in range(4))
    group_id, group_events = group_with(owner, asker, insider)
    publish(*group_events, registered(knower, "knower"), registered(insider, "insider"))
    wait_for(lambda: members_known(client, group_id, 3))
    public_thread = question(
        owner, tags=[], title="Notebook power", body="It drains in an hour", created_at=EARLIER
    )
    group_thread = question(
        owner,
        tags=[],
        title="Notebook power",
        body="It drains in an hour",
        group_id=group_id,
        created_at=EARLIER,
    )
    publish(
        public_thread,
        group_thread,
        answer_to(public_thread, body=ON_TOPIC, author_id=knower, created_at=EARLIER),
        answer_to(group_thread, body=ON_TOPIC, author_id=insider, created_at=EARLIER),
    )

    # A public question: only public answers count, so the group's answerer is not asked
    # (the asker may read the group's answer; the question's other readers may not).
    public = question(asker, tags=["hardware"], title=TITLE, body="")
    publish(public)
    wait_for(lambda: routed_question(client, public.content_id) is not None, timeout=20)
    body = routing(client, people.header(asker), public.content_id)
    assert asked_in_round(body, 1) == [str(knower)]
    assert body["rounds"][0]["people"][0]["reason"] == (
        "you were asked because 1 answer of yours is close in meaning to it"
    )

    # The group's question: its answers count for its members.
    private = question(asker, tags=["hardware"], title=TITLE, body="", group_id=group_id)
    publish(private)
    wait_for(lambda: routed_question(client, private.content_id) is not None, timeout=20)
    body = routing(client, people.header(asker), private.content_id)
    # The insider first (by meaning), then the owner (a member: a prior); never the knower.
    assert asked_in_round(body, 1) == [str(insider), str(owner)]
    assert "close in meaning" in body["rounds"][0]["people"][0]["reason"]


def test_a_reason_says_how_many_answers_are_close_in_meaning() -> None:
    both = explain(
        kinds=Counter({"answer": 2}), thanks=0, label="#plutus", declines=0, declined_on=[], close=3
    )
    assert both == (
        "you were asked because you wrote 2 answers on #plutus"
        " and 3 answers of yours are close in meaning to it"
    )
    alone = explain(kinds=Counter(), thanks=1, label="#a", declines=0, declined_on=[], close=1)
    assert alone == (
        "you were asked because 1 answer of yours is close in meaning to it, thanked 1 time"
    )
