"""Delete on request (GDPR erasure) and export, posts' part: the person's name goes from their
items, from others' mentions and credits, and from history; their content and others' stay."""

import json
import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, answer, ask, outbox_events
from services.posts.tests.test_consumers import publish_envelopes
from shared.events.contracts import UserErasureRequested
from shared.events.envelope import wrap
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

TOMBSTONE = "former-0123456789abcdef"


def create(client: TestClient, path: str, who: User, **payload: Any) -> dict[str, Any]:
    response = client.post(path, json=payload, headers=who.headers)
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def erasure_of(person: User) -> UserErasureRequested:
    return UserErasureRequested(
        erasure_id=new_id(),
        user_id=person.id,
        requested_at=utcnow(),
        handle=person.handle,
        display_name=person.handle.title(),
        replacement_handle=TOMBSTONE,
        replacement_display_name="Former member",
    )


def reports(client: TestClient) -> list[dict[str, Any]]:
    return [
        envelope.data
        for _subject, envelope in outbox_events(client)
        if envelope.type == "knowflow.user.erasure_reported.v1"
    ]


def updated_ids(client: TestClient) -> set[str]:
    return {
        envelope.data["content_id"]
        for _subject, envelope in outbox_events(client)
        if envelope.type.endswith(".updated.v1")
    }


def test_erasure_removes_the_name_everywhere_in_posts_and_keeps_the_content(
    posts: TestClient, user: Callable[[str], User], nats_url: str
) -> None:
    ada, bob = user("ada"), user("bob")
    own_post = create(posts, "/posts", ada, body="Deploys are frozen on Fridays #ops")
    reply = create(posts, "/posts", bob, body="Thanks @ada, noted", parent_id=own_post["id"])
    mention = create(posts, "/posts", bob, body="Ask @Ada about #ops, or @adam")
    article = create(
        posts, f"/posts/{own_post['id']}/formalize", bob, title="Deploy freeze, @ada's rule"
    )
    question = ask(posts, bob, title="Who owns the freeze, @ada?", body="See above")
    own_answer = answer(posts, ada, question["id"], body="I do, ask me (ada).")
    create(posts, f"/questions/{question['id']}/comments", ada, body="Or @bob")
    create(posts, f"/posts/{mention['id']}/reactions", ada, kind="thanks")
    assert posts.put(
        f"/questions/{question['id']}/vote", json={"value": 1}, headers=ada.headers
    ).status_code in (200, 201)
    before = updated_ids(posts)

    envelope = wrap(erasure_of(ada), source="/knowflow/identity")
    publish_envelopes(nats_url, envelope)
    (report,) = wait_for(lambda: reports(posts))
    assert report["service"] == "posts" and report["user_id"] == str(ada.id)
    assert report["removed"]["authorship_anonymised"] == 4  # post, answer, comment, credit
    assert report["removed"]["mentions_removed"] == 4  # reply, mention, article, question

    reader = bob.headers
    pages = [
        posts.get(f"/posts/{own_post['id']}", headers=reader).json(),
        posts.get(f"/posts/{reply['id']}", headers=reader).json(),
        posts.get(f"/posts/{mention['id']}", headers=reader).json(),
        posts.get(f"/articles/{article['id']}", headers=reader).json(),
        posts.get(f"/articles/{article['id']}/revisions", headers=reader).json(),
        posts.get(f"/questions/{question['id']}", headers=reader).json(),
        posts.get(f"/questions/{question['id']}/revisions", headers=reader).json(),
        posts.get(f"/answers/{own_answer['id']}", headers=reader).json(),
        posts.get("/posts", headers=reader).json(),
    ]
    text = json.dumps(pages)
    assert not re.search(r"@ada(?!\w)", text, re.IGNORECASE) and "**ada**" not in text.lower()
    assert '"ada"' not in text.lower()
    assert "@adam" in text  # someone else with a longer handle is untouched
    assert pages[0]["author_handle"] == TOMBSTONE and pages[0]["body"].startswith("Deploys")
    assert pages[1]["body"] == "Thanks [former member], noted"
    assert pages[7]["body"] == "I do, ask me (ada)."  # content stays: only names are rewritten
    assert pages[3]["version"] == 2
    # Every rewritten item is re-announced, so search, digests and notifications follow.
    assert updated_ids(posts) - before == {
        reply["id"],
        mention["id"],
        article["id"],
        question["id"],
    }

    # A redelivered request (a replay) removes nothing twice and reports once.
    publish_envelopes(nats_url, envelope, replay=True)
    marker = wrap(erasure_of(bob), source="/knowflow/identity")
    publish_envelopes(nats_url, marker)
    wait_for(lambda: len(reports(posts)) == 2)
    assert [item["user_id"] for item in reports(posts)] == [str(ada.id), str(bob.id)]


def test_export_holds_the_callers_items_reactions_and_votes_only(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, bob, carol = user("ada"), user("bob"), user("carol")
    private = groups.create(carol)
    secret = create(posts, "/posts", carol, body="Carol's private plan", group_id=str(private))
    others = create(posts, "/posts", bob, body="Bob's public note")
    mine = create(posts, "/posts", ada, body="Ada's note")
    question = ask(posts, bob)
    mine_answer = answer(posts, ada, question["id"])
    create(posts, f"/posts/{others['id']}/reactions", ada, kind="like")
    posts.put(f"/questions/{question['id']}/vote", json={"value": 1}, headers=ada.headers)

    response = posts.get("/export/me", headers=ada.headers)
    assert response.status_code == 200, response.text
    export = response.json()
    assert [item["id"] for item in export["posts"]] == [mine["id"]]
    assert [item["id"] for item in export["answers"]] == [mine_answer["id"]]
    assert export["questions"] == [] and export["articles"] == []
    assert [(item["post_id"], item["kind"]) for item in export["reactions"]] == [
        (others["id"], "like")
    ]
    assert [item["item_id"] for item in export["votes"]] == [question["id"]]
    text = json.dumps(export)
    assert secret["id"] not in text and "private plan" not in text and "Bob's" not in text
    assert str(UUID(mine["author_id"])) == str(ada.id)


def test_export_needs_a_valid_token(posts: TestClient) -> None:
    assert posts.get("/export/me").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert posts.get("/export/me", headers=bad).status_code == 401
