"""Thanks as evidence of expertise: counted from reactions, for both engines, never leaking."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    Headers,
    People,
    article,
    joined,
    post,
    reply,
    settle_content,
)
from shared.events.bus import Bus
from shared.events.contracts import ContentSnapshot, ReactionAdded, ReactionRemoved
from shared.events.envelope import CloudEvent, subject_for, wrap
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

PublishEnvelopes = Callable[..., None]


@pytest.fixture
def publish_envelopes(nats_url: str) -> PublishEnvelopes:
    """Publish ready-made envelopes (chosen times, repeated ids), each as a new message."""

    async def publish(envelopes: tuple[CloudEvent, ...]) -> None:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-publisher")
        try:
            for envelope in envelopes:
                # A fresh message id: JetStream's dedupe must not hide a redelivered event
                # from the consumer's own idempotence.
                await bus.js.publish(
                    subject_for(envelope.type, envelope.audience),
                    envelope.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(new_id())},
                )
        finally:
            await bus.close()

    def run(*envelopes: CloudEvent) -> None:
        asyncio.run(publish(envelopes))

    return run


def reaction(
    item: ContentSnapshot,
    user_id: UUID,
    *,
    removed: bool = False,
    kind: Literal["like", "thanks"] = "thanks",
    at: datetime | None = None,
) -> CloudEvent:
    """The envelope posts would publish for a reaction to `item`, at time `at`."""
    event = ReactionRemoved if removed else ReactionAdded
    data = event(
        content_id=item.content_id,
        author_id=item.author_id,
        user_id=user_id,
        kind=kind,
        group_id=item.group_id,
        visibility=item.visibility,
    )
    envelope = wrap(data, source="/knowflow/posts")
    return envelope.model_copy(update={"time": at}) if at else envelope


def experts(client: TestClient, headers: Headers, topic: str) -> list[dict[str, Any]]:
    response = client.get("/experts", params={"topic": topic}, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["experts"]
    return found


def settle_thanks(
    client: TestClient,
    headers: Headers,
    publish: Callable[..., None],
    publish_envelopes: PublishEnvelopes,
    *envelopes: CloudEvent,
) -> None:
    """Publish reaction envelopes, then a thanks on a marker post; wait until it counts.

    One durable consumer applies reactions in stream order, so once the marker's thanks
    shows every earlier reaction has been processed.
    """
    word = f"thanksmarker{new_id().hex}"
    marker = post(body=word)
    settle_content(client, headers, publish, marker)
    publish_envelopes(*envelopes, reaction(marker, new_id()))
    wait_for(lambda: [e["thanks"] for e in experts(client, headers, word)] == [1])


def equal_answers(topic: str) -> tuple[ContentSnapshot, ContentSnapshot, ContentSnapshot]:
    """A question and two answers equal in every way but their authors (tie: smaller id first)."""
    first, second = sorted((new_id(), new_id()), key=str)
    created = utcnow()
    question = post(title=f"{topic} question", body=f"how does {topic} work?")
    return (
        question,
        reply(thread=question, body="like this", author_id=first, created_at=created),
        reply(thread=question, body="or like that", author_id=second, created_at=created),
    )


def score_of(ranked: list[dict[str, Any]], user_id: UUID) -> dict[str, Any]:
    return next(entry for entry in ranked if entry["user_id"] == str(user_id))


def test_a_thanked_answer_lifts_its_author_above_an_equal_peer_until_taken_back(
    search_client: TestClient,
    people: People,
    publish_events: Callable[..., None],
    publish_envelopes: PublishEnvelopes,
) -> None:
    me = people.header(new_id())
    question, first, second = equal_answers("kafka")
    settle_content(search_client, me, publish_events, question, first, second)
    before = [e["user_id"] for e in experts(search_client, me, "kafka")][:2]
    assert before == [str(first.author_id), str(second.author_id)]

    publish_envelopes(reaction(second, question.author_id))
    wait_for(lambda: experts(search_client, me, "kafka")[0]["user_id"] == str(second.author_id))

    ranked = experts(search_client, me, "kafka")
    top, peer = ranked[0], score_of(ranked, first.author_id)
    assert (top["thanks"], peer["thanks"]) == (1, 0)
    assert [(item["content_id"], item["thanks"]) for item in top["evidence"]] == [
        (str(second.content_id), 1)
    ]
    # One thanks adds half the item's weight.
    assert abs(top["score"] - 1.5 * peer["score"]) < 1e-3
    assert abs(top["evidence"][0]["weight"] - 1.5 * peer["evidence"][0]["weight"]) < 1e-3

    publish_envelopes(reaction(second, question.author_id, removed=True))
    wait_for(lambda: experts(search_client, me, "kafka")[0]["user_id"] == str(first.author_id))
    after = experts(search_client, me, "kafka")
    assert score_of(after, second.author_id)["thanks"] == 0
    assert score_of(after, second.author_id)["score"] == score_of(after, first.author_id)["score"]


def test_replayed_and_out_of_order_reactions_count_once_and_the_newest_wins(
    search_client: TestClient,
    people: People,
    publish_events: Callable[..., None],
    publish_envelopes: PublishEnvelopes,
) -> None:
    me = people.header(new_id())
    answer = post(body="grpc deadlines explained")
    settle_content(search_client, me, publish_events, answer)
    grateful, fickle, steady, now = new_id(), new_id(), new_id(), utcnow()
    thanks = reaction(answer, grateful, at=now)
    settle_thanks(
        search_client,
        me,
        publish_events,
        publish_envelopes,
        thanks,
        thanks,  # the same event delivered again
        reaction(answer, grateful, at=now + timedelta(seconds=1)),  # and a duplicate
        # Taken back, then the older "added" arrives late: it must not resurrect it.
        reaction(answer, fickle, removed=True, at=now + timedelta(seconds=2)),
        reaction(answer, fickle, at=now + timedelta(seconds=1)),
        # Added after a late, older removal: still thanked.
        reaction(answer, steady, at=now + timedelta(seconds=2)),
        reaction(answer, steady, removed=True, at=now + timedelta(seconds=1)),
    )

    (expert,) = experts(search_client, me, "grpc")

    assert expert["thanks"] == 2
    assert expert["evidence"][0]["thanks"] == 2


def test_likes_are_not_thanks(
    search_client: TestClient,
    people: People,
    publish_events: Callable[..., None],
    publish_envelopes: PublishEnvelopes,
) -> None:
    me = people.header(new_id())
    question, first, second = equal_answers("redis")
    settle_content(search_client, me, publish_events, question, first, second)
    likes = [reaction(second, new_id(), kind="like") for _ in range(3)]
    settle_thanks(search_client, me, publish_events, publish_envelopes, *likes)

    ranked = experts(search_client, me, "redis")

    assert [e["user_id"] for e in ranked][:2] == [str(first.author_id), str(second.author_id)]
    assert score_of(ranked, second.author_id)["thanks"] == 0
    assert ranked[0]["score"] == ranked[1]["score"]


def test_thanks_on_a_private_item_do_not_change_a_non_members_results(
    search_client: TestClient,
    people: People,
    publish_events: Callable[..., None],
    publish_envelopes: PublishEnvelopes,
) -> None:
    group, member_id, outsider_id = new_id(), new_id(), new_id()
    member, outsider = people.header(member_id), people.header(outsider_id)
    question, first, second = equal_answers("vault")
    secret = article(title="Vault at our company", body="vault unseal keys", group_id=group)
    # The second answerer also wrote in the private group; thanks there are members' business.
    private_answer = reply(thread=secret, body="rotate them", author_id=second.author_id)
    publish_events(joined(group, member_id))
    settle_content(
        search_client, member, publish_events, question, first, second, secret, private_answer
    )
    wait_for(
        lambda: str(secret.author_id)
        in {e["user_id"] for e in experts(search_client, member, "vault")}
    )
    outsiders_view = experts(search_client, outsider, "vault")

    settle_thanks(
        search_client,
        member,
        publish_events,
        publish_envelopes,
        *(reaction(private_answer, new_id()) for _ in range(5)),
        *(reaction(secret, new_id()) for _ in range(5)),
    )

    seen_by_member = experts(search_client, member, "vault")
    assert score_of(seen_by_member, second.author_id)["thanks"] == 5
    assert score_of(seen_by_member, secret.author_id)["thanks"] == 5
    assert experts(search_client, outsider, "vault") == outsiders_view
    assert all(entry["thanks"] == 0 for entry in outsiders_view)
    assert [e["user_id"] for e in outsiders_view][:2] == [
        str(first.author_id),
        str(second.author_id),
    ]
