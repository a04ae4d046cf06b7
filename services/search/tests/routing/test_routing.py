"""A new question is put to the people who know, on evidence its readers may see.

Through the real event path: content and memberships arrive over NATS, a
`question.created` is routed by the routing consumer, and each person asked gets a
restricted `question.routed` in the outbox.
"""

import json
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.search.routing.models import RoutingAsk
from services.search.tests.conftest import People, registered
from services.search.tests.routing.conftest import (
    ROUTED_SUBJECT,
    Publisher,
    answer,
    asked_in_round,
    db,
    evidence,
    group_with,
    members_known,
    question,
    routed_question,
    routing,
    settle,
)
from shared.events.contracts import AnswerAccepted
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.testing.backends import postgres_url
from shared.testing.fixtures import wait_for

# Where the engine does not matter: one engine (the one the database allows).
ONE_ENGINE = pytest.mark.parametrize(
    "engine_name", ["opensearch" if postgres_url() else "embedded"], indirect=True
)


def routed_events(client: TestClient, question_id: UUID) -> list[tuple[str, dict[str, Any]]]:
    with Session(db(client)) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.payload).contains(str(question_id)))
            .order_by(col(OutboxMessage.created_at))
        ).all()
    return [(row.subject, json.loads(row.payload)) for row in rows]


def wait_routed(client: TestClient, question_id: UUID) -> None:
    wait_for(lambda: routed_question(client, question_id) is not None, timeout=20)


def test_a_new_question_is_asked_of_the_top_three_but_never_its_asker(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, *experts = (new_id() for _ in range(6))
    headers = people.header(asker)
    # The asker knows most; then experts[0] > experts[1] > ... by how much they wrote.
    settle(
        client,
        headers,
        publish,
        registered(experts[0], "ada"),
        *evidence(asker, 8, tag="plutus"),
        *(
            item
            for rank, user in enumerate(experts)
            for item in evidence(user, 6 - rank, tag="plutus")
        ),
    )
    asked = question(asker, tags=["plutus"])
    publish(asked)
    wait_routed(client, asked.content_id)

    body = routing(client, headers, asked.content_id)
    assert [round_["round"] for round_ in body["rounds"]] == [1]
    assert asked_in_round(body, 1) == [str(user) for user in experts[:3]]
    first = body["rounds"][0]["people"][0]
    assert first["handle"] == "ada"
    assert first["status"] == "asked" and first["responded_at"] is None
    assert first["reason"] == "you were asked because you wrote 3 posts on #plutus"
    assert len(first["evidence"]) == 3
    assert all(item["kind"] == "post" for item in first["evidence"])

    events = routed_events(client, asked.content_id)
    assert [subject for subject, _ in events] == [ROUTED_SUBJECT] * 3
    assert [payload["data"]["user_id"] for _, payload in events] == asked_in_round(body, 1)
    data = events[0][1]["data"]
    assert isinstance(data, dict)
    assert data["round"] == 1 and data["asker_id"] == str(asker)
    assert data["reason"] == first["reason"] and data["title"] == asked.title


def test_a_redelivered_question_is_routed_once(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, expert = new_id(), new_id()
    settle(client, people.header(asker), publish, *evidence(expert, 2, tag="aiken"))
    asked = question(asker, tags=["aiken"])
    publish(asked)
    wait_routed(client, asked.content_id)
    # The same question again (a replay with a new event id): nobody is asked twice.
    publish(asked)
    assert len(routed_events(client, asked.content_id)) == 1


def test_a_private_groups_question_is_asked_only_of_its_members(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, member, outsider, owner = new_id(), new_id(), new_id(), new_id()
    group_id, group_events = group_with(owner, asker, member)
    publish(*group_events)
    wait_for(lambda: members_known(client, group_id, 3))
    # The outsider knows the most, in public; the member a little, in the group.
    settle(
        client,
        people.header(asker),
        publish,
        *evidence(outsider, 5, tag="hydra"),
        *evidence(member, 1, tag="hydra", group_id=group_id),
    )
    asked = question(asker, tags=["hydra"], group_id=group_id)
    publish(asked)
    wait_routed(client, asked.content_id)

    body = routing(client, people.header(asker), asked.content_id)
    # The member who knows first; the owner follows on membership alone (no history).
    assert asked_in_round(body, 1) == [str(member), str(owner)]
    assert body["rounds"][0]["people"][1]["evidence"] == []
    events = routed_events(client, asked.content_id)
    assert {payload["data"]["user_id"] for _subject, payload in events} == {str(member), str(owner)}
    for subject, payload in events:
        assert subject == ROUTED_SUBJECT
        assert payload["data"]["visibility"] == "private"


def test_a_public_question_is_ranked_only_on_public_evidence(
    client: TestClient, publish: Publisher, people: People
) -> None:
    """The asker sees a private group; the people asked about a public question must not."""
    asker, insider, both, owner = new_id(), new_id(), new_id(), new_id()
    group_id, group_events = group_with(owner, asker, insider, both)
    publish(*group_events)
    wait_for(lambda: members_known(client, group_id, 4))
    private_posts = evidence(both, 4, tag="mithril", group_id=group_id)
    public_posts = evidence(both, 1, tag="mithril")
    settle(
        client,
        people.header(asker),
        publish,
        *evidence(insider, 6, tag="mithril", group_id=group_id),
        *private_posts,
        *public_posts,
    )
    asked = question(asker, tags=["mithril"])
    publish(asked)
    wait_routed(client, asked.content_id)

    body = routing(client, people.header(asker), asked.content_id)
    # The insider's evidence is all private: not a reason anyone may be told.
    assert asked_in_round(body, 1) == [str(both)]
    [person] = body["rounds"][0]["people"]
    assert [item["content_id"] for item in person["evidence"]] == [str(public_posts[0].content_id)]
    assert person["reason"] == "you were asked because you wrote 1 post on #mithril"
    [(_subject, payload)] = routed_events(client, asked.content_id)
    private_ids = {str(item.content_id) for item in private_posts}
    assert not private_ids & {item["content_id"] for item in payload["data"]["evidence"]}


@ONE_ENGINE
def test_only_the_asker_and_admins_read_the_rounds_and_a_private_group_stays_hidden(
    client: TestClient, publish: Publisher, people: People, admin_header: dict[str, str]
) -> None:
    asker, expert, reader, outsider, owner = (new_id() for _ in range(5))
    group_id, group_events = group_with(owner, asker, expert, reader)
    publish(*group_events)
    wait_for(lambda: members_known(client, group_id, 4))
    settle(
        client,
        people.header(asker),
        publish,
        *evidence(expert, 2, tag="ouroboros", group_id=group_id),
        *evidence(expert, 1, tag="ouroboros"),
    )
    private = question(asker, tags=["ouroboros"], group_id=group_id)
    public = question(asker, tags=["ouroboros"])
    publish(private, public)
    wait_routed(client, private.content_id)
    wait_routed(client, public.content_id)

    path = f"/routing/questions/{private.content_id}"
    assert client.get(path, headers=people.header(asker)).status_code == 200
    refused = client.get(path, headers=people.header(reader))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    # Someone who may not read the question does not learn that it exists; as in posts,
    # being an admin grants no access to a private group's content.
    assert client.get(path, headers=people.header(outsider)).status_code == 404
    assert client.get(path, headers=admin_header).status_code == 404
    public_path = f"/routing/questions/{public.content_id}"
    assert client.get(public_path, headers=admin_header).status_code == 200
    assert client.get(public_path, headers=people.header(outsider)).status_code == 403
    assert client.get(f"/routing/questions/{new_id()}", headers=admin_header).status_code == 404
    assert client.get(path).status_code == 401


@ONE_ENGINE
def test_an_answer_by_a_routed_person_marks_them_answered(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, first, second = new_id(), new_id(), new_id()
    settle(
        client,
        people.header(asker),
        publish,
        *evidence(first, 3, tag="cardano-cli"),
        *evidence(second, 2, tag="cardano-cli"),
    )
    asked = question(asker, tags=["cardano-cli"])
    publish(asked)
    wait_routed(client, asked.content_id)
    reply = answer(asked, second)
    publish(reply)

    body = routing(client, people.header(asker), asked.content_id)
    statuses = {p["user_id"]: p["status"] for p in body["rounds"][0]["people"]}
    assert statuses == {str(first): "asked", str(second): "answered"}
    stored = routed_question(client, asked.content_id)
    assert stored is not None and stored.status == "answered" and stored.next_round_at is None

    publish(
        AnswerAccepted(
            question_id=asked.content_id,
            group_id=None,
            visibility="public",
            answer_id=new_id(),
            answer_author_id=first,
            previous_answer_id=None,
            asker_id=asker,
            accepted_by=asker,
            version=2,
        )
    )
    body = routing(client, people.header(asker), asked.content_id)
    assert {p["status"] for p in body["rounds"][0]["people"]} == {"answered"}


@ONE_ENGINE
def test_a_declined_person_is_ranked_lower_on_questions_sharing_a_tag(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, strong, weak = new_id(), new_id(), new_id()
    settle(
        client,
        people.header(asker),
        publish,
        *evidence(strong, 3, tag="staking"),
        *evidence(weak, 2, tag="staking"),
    )
    first = question(asker, tags=["staking"])
    publish(first)
    wait_routed(client, first.content_id)
    assert asked_in_round(routing(client, people.header(asker), first.content_id), 1) == [
        str(strong),
        str(weak),
    ]

    response = client.post(
        f"/routing/questions/{first.content_id}/decline",
        json={"reason": "not my area"},
        headers=people.header(strong, "strong"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "declined"
    with Session(db(client)) as session:
        ask = session.get(RoutingAsk, (first.content_id, strong))
        assert ask is not None and ask.decline_reason == "not my area"

    second = question(asker, tags=["staking"], title="Which pool should I delegate to?")
    publish(second)
    wait_routed(client, second.content_id)
    body = routing(client, people.header(asker), second.content_id)
    assert asked_in_round(body, 1) == [str(weak), str(strong)]
    demoted = body["rounds"][0]["people"][1]
    assert demoted["reason"].endswith("(ranked lower: you declined 1 earlier question on #staking)")


@ONE_ENGINE
def test_only_a_person_asked_may_decline_and_not_after_answering(
    client: TestClient, publish: Publisher, people: People
) -> None:
    asker, expert, bystander, outsider, owner = (new_id() for _ in range(5))
    others = [new_id(), new_id()]
    group_id, group_events = group_with(owner, asker, expert, bystander, *others)
    publish(*group_events)
    wait_for(lambda: members_known(client, group_id, 6))
    # Three members who know fill the round, so the bystander (membership only) is not asked.
    settle(
        client,
        people.header(asker),
        publish,
        *evidence(expert, 2, tag="voting", group_id=group_id),
        *[item for other in others for item in evidence(other, 2, tag="voting", group_id=group_id)],
    )
    asked = question(asker, tags=["voting"], group_id=group_id)
    publish(asked)
    wait_routed(client, asked.content_id)
    path = f"/routing/questions/{asked.content_id}/decline"

    assert client.post(path, json={}, headers=people.header(bystander)).status_code == 403
    assert client.post(path, json={}, headers=people.header(outsider)).status_code == 404
    assert client.post(path, json={"why": "x"}, headers=people.header(expert)).status_code == 422
    assert client.post(path, json={"reason": ""}, headers=people.header(expert)).status_code == 422
    publish(answer(asked, expert))
    refused = client.post(path, json={}, headers=people.header(expert))
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"


@ONE_ENGINE
def test_questions_from_the_past_are_remembered_but_nobody_is_asked(
    client: TestClient, publish: Publisher, people: People
) -> None:
    """An import replays years of questions: routing them would ask people about history."""
    from datetime import timedelta

    from shared.ids import utcnow

    asker, expert = new_id(), new_id()
    settle(client, people.header(asker), publish, *evidence(expert, 2, tag="ledger"))
    old = question(asker, tags=["ledger"], created_at=utcnow() - timedelta(days=400))
    publish(old)
    wait_routed(client, old.content_id)
    assert routing(client, people.header(asker), old.content_id)["rounds"] == []
    assert routed_events(client, old.content_id) == []


def test_a_groups_question_is_never_ranked_on_another_groups_content(
    client: TestClient, publish: Publisher, people: People
) -> None:
    """Both groups are the asker's; the question's readers are only the first group's."""
    asker, expert, other_expert, owner = new_id(), new_id(), new_id(), new_id()
    group_id, group_events = group_with(owner, asker, expert, other_expert)
    other_id, other_events = group_with(owner, asker, expert, other_expert)
    publish(*group_events, *other_events)
    wait_for(lambda: members_known(client, group_id, 4) and members_known(client, other_id, 4))
    in_group = evidence(expert, 1, tag="treasury", group_id=group_id)
    settle(
        client,
        people.header(asker),
        publish,
        *in_group,
        *evidence(expert, 5, tag="treasury", group_id=other_id),
        *evidence(other_expert, 6, tag="treasury", group_id=other_id),
    )
    asked = question(asker, tags=["treasury"], group_id=group_id)
    publish(asked)
    wait_routed(client, asked.content_id)

    body = routing(client, people.header(asker), asked.content_id)
    # The expert on the group's own content first; the others on membership alone.
    assert asked_in_round(body, 1)[0] == str(expert)
    person, *members = body["rounds"][0]["people"]
    assert [item["content_id"] for item in person["evidence"]] == [str(in_group[0].content_id)]
    assert person["reason"] == "you were asked because you wrote 1 post on #treasury"
    assert all(member["evidence"] == [] for member in members)
