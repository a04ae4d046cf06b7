"""Answers, comments and votes through the HTTP API."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, answer, ask, outbox_events
from shared.pagination import encode_cursor


def test_answers_list_accepted_first_then_by_score_then_oldest_in_pages(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob, cyd, dan = user("ada"), user("bob"), user("cyd"), user("dan")
    question = ask(posts, ada)
    old, voted, new, chosen = (answer(posts, bob, question["id"], f"Answer {n}") for n in range(4))
    for voter in (cyd, dan):
        posts.put(f"/answers/{voted['id']}/vote", json={"value": 1}, headers=voter.headers)
    posts.put(f"/answers/{new['id']}/vote", json={"value": -1}, headers=cyd.headers)
    posts.put(
        f"/questions/{question['id']}/accepted-answer",
        json={"answer_id": chosen["id"]},
        headers=ada.headers,
    )
    path = f"/questions/{question['id']}/answers"
    whole = posts.get(path, headers=ada.headers).json()
    assert [item["id"] for item in whole["items"]] == [
        chosen["id"],
        voted["id"],
        old["id"],
        new["id"],
    ]
    assert whole["next_cursor"] is None
    for limit in (1, 2, 3):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            page = posts.get(path, params=params, headers=ada.headers).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [item["id"] for item in whole["items"]], limit
    forged = encode_cursor([2**40, "2020-01-01T00:00:00+00:00", str(chosen["id"])])
    for cursor in ("WzEsMl0", forged):
        response = posts.get(path, params={"cursor": cursor}, headers=ada.headers)
        assert response.status_code == 400


def test_votes_one_per_person_not_on_your_own_and_withdrawable(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob, cyd = user("ada"), user("bob"), user("cyd")
    question = ask(posts, ada)
    reply = answer(posts, bob, question["id"])
    own = posts.put(f"/questions/{question['id']}/vote", json={"value": 1}, headers=ada.headers)
    assert own.status_code == 403
    own = posts.put(f"/answers/{reply['id']}/vote", json={"value": 1}, headers=bob.headers)
    assert own.status_code == 403
    path = f"/answers/{reply['id']}/vote"
    assert posts.put(path, json={"value": 1}, headers=cyd.headers).json() == {
        "score": 1,
        "my_vote": 1,
    }
    assert posts.put(path, json={"value": 1}, headers=cyd.headers).json() == {
        "score": 1,
        "my_vote": 1,
    }
    assert posts.put(path, json={"value": -1}, headers=cyd.headers).json() == {
        "score": -1,
        "my_vote": -1,
    }
    assert posts.put(path, json={"value": 1}, headers=ada.headers).json() == {
        "score": 0,
        "my_vote": 1,
    }
    assert posts.put(path, json={"value": 0}, headers=ada.headers).status_code == 422
    assert posts.put(path, json={"value": 2}, headers=ada.headers).status_code == 422
    assert posts.delete(path, headers=cyd.headers).json() == {"score": 1, "my_vote": 0}
    read = posts.get(f"/answers/{reply['id']}", headers=ada.headers).json()
    assert read["score"] == 1 and read["my_vote"] == 1
    votes = [e.data for _, e in outbox_events(posts) if e.type == "knowflow.vote.cast.v1"]
    assert [(v["value"], v["score"], v["version"]) for v in votes] == [
        (1, 1, 1),
        (-1, -1, 2),
        (1, 0, 3),
        (0, 1, 4),
    ]
    assert {v["voter_id"] for v in votes} == {str(cyd.id), str(ada.id)}
    assert all(v["kind"] == "answer" and v["author_id"] == str(bob.id) for v in votes)


def test_question_votes_show_in_the_score_and_my_vote(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    question = ask(posts, ada)
    posts.put(f"/questions/{question['id']}/vote", json={"value": -1}, headers=bob.headers)
    mine = posts.get(f"/questions/{question['id']}", headers=bob.headers).json()
    assert mine["score"] == -1 and mine["my_vote"] == -1
    theirs = posts.get(f"/questions/{question['id']}", headers=ada.headers).json()
    assert theirs["my_vote"] == 0


def test_answers_keep_revisions_and_only_the_author_or_admin_change_them(
    posts: TestClient, user: Callable[[str], User], admin: User
) -> None:
    ada, bob = user("ada"), user("bob")
    question = ask(posts, ada)
    reply = answer(posts, bob, question["id"], "First take")
    path = f"/answers/{reply['id']}"
    assert posts.patch(path, json={"body": "Mine"}, headers=ada.headers).status_code == 403
    assert posts.delete(path, headers=ada.headers).status_code == 403
    edited = posts.patch(path, json={"body": "Second take"}, headers=bob.headers)
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = posts.patch(path, json={"body": "x"}, headers={**bob.headers, "If-Match": '"old"'})
    assert stale.status_code == 412
    assert posts.patch(path, json={"body": "Third"}, headers=admin.headers).status_code == 200
    revisions = posts.get(f"{path}/revisions", headers=ada.headers).json()["items"]
    assert [r["body"] for r in revisions] == ["First take", "Second take", "Third"]
    types = [e.type for _, e in outbox_events(posts)]
    assert types.count("knowflow.answer.updated.v1") == 2


def test_answer_events_carry_the_question_as_parent_and_thread(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, bob = user("ada"), user("bob")
    secret = groups.create(ada, "private")
    groups.add(secret, bob)
    question = ask(posts, ada, group_id=str(secret), tags=["ops"])
    reply = answer(posts, bob, question["id"])
    comment = posts.post(
        f"/answers/{reply['id']}/comments", json={"body": "Why?"}, headers=ada.headers
    ).json()
    events = {e.data["content_id"]: (subject, e) for subject, e in outbox_events(posts)}
    subject, created = events[reply["id"]]
    assert subject == "events.restricted.answer.created.v1"
    assert created.data["parent_id"] == created.data["thread_id"] == question["id"]
    assert created.data["tags"] == ["ops"] and created.data["visibility"] == "private"
    subject, commented = events[comment["id"]]
    assert subject == "events.restricted.comment.created.v1"
    assert commented.data["parent_id"] == reply["id"]
    assert commented.data["thread_id"] == question["id"]


def test_comments_on_questions_and_answers_change_only_by_author_or_admin(
    posts: TestClient, user: Callable[[str], User], admin: User
) -> None:
    ada, bob = user("ada"), user("bob")
    question = ask(posts, ada)
    reply = answer(posts, bob, question["id"])
    on_question = posts.post(
        f"/questions/{question['id']}/comments", json={"body": "Which vault?"}, headers=bob.headers
    )
    assert on_question.status_code == 201
    comment = on_question.json()
    assert comment["parent_id"] == question["id"] and comment["question_id"] == question["id"]
    on_answer = posts.post(
        f"/answers/{reply['id']}/comments", json={"body": "Source?"}, headers=ada.headers
    ).json()
    assert on_answer["parent_id"] == reply["id"]
    too_long = posts.post(
        f"/questions/{question['id']}/comments", json={"body": "x" * 601}, headers=bob.headers
    )
    assert too_long.status_code == 422
    path = f"/comments/{comment['id']}"
    assert posts.patch(path, json={"body": "Mine"}, headers=ada.headers).status_code == 403
    assert posts.patch(path, json={"body": "HashiCorp's?"}, headers=bob.headers).status_code == 200
    read = posts.get(f"/questions/{question['id']}", headers=ada.headers).json()
    assert [c["body"] for c in read["comments"]] == ["HashiCorp's?"]
    listed = posts.get(f"/questions/{question['id']}/answers", headers=ada.headers).json()
    assert [c["body"] for c in listed["items"][0]["comments"]] == ["Source?"]
    assert posts.delete(path, headers=ada.headers).status_code == 403
    assert posts.delete(path, headers=admin.headers).status_code == 204
    assert posts.get(f"/questions/{question['id']}", headers=ada.headers).json()["comments"] == []


def test_answering_in_an_open_group_needs_membership(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    owner, outsider = user("olga"), user("oscar")
    group = groups.create(owner, "open")
    question = ask(posts, owner, group_id=str(group))
    assert posts.get(f"/questions/{question['id']}", headers=outsider.headers).status_code == 200
    response = posts.post(
        f"/questions/{question['id']}/answers", json={"body": "b"}, headers=outsider.headers
    )
    assert response.status_code == 403


def test_votes_sent_at_once_all_count(posts: TestClient, user: Callable[[str], User]) -> None:
    ada = user("ada")
    question = ask(posts, ada)
    voters = [user(f"voter{n}") for n in range(8)]

    def vote(voter: User) -> int:
        path = f"/questions/{question['id']}/vote"
        return posts.put(path, json={"value": 1}, headers=voter.headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(vote, voters))
    assert statuses == [200] * 8
    read = posts.get(f"/questions/{question['id']}", headers=ada.headers).json()
    assert read["score"] == 8
    votes = [e.data for _, e in outbox_events(posts) if e.type == "knowflow.vote.cast.v1"]
    assert sorted(v["version"] for v in votes) == list(range(1, 9))
    assert sorted(v["score"] for v in votes) == list(range(1, 9))
