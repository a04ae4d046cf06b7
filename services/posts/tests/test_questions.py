"""Questions through the HTTP API: asking, editing with revisions, lists, acceptance, duplicates."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, answer, ask, outbox_events
from shared.ids import new_id
from shared.pagination import encode_cursor


def test_a_question_is_asked_with_title_body_and_tags(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    created = ask(posts, ada, tags=["#Vault", "ops"], body="Ping @bob: how often?")
    assert created["title"] == "How do we rotate secrets?"
    assert created["tags"] == ["vault", "ops"]
    assert created["mentions"] == ["bob"]
    assert created["visibility"] == "public" and created["group_id"] is None
    assert created["score"] == 0 and created["answer_count"] == 0
    assert created["has_accepted_answer"] is False and created["my_vote"] == 0
    assert created["comments"] == [] and created["duplicates"] == []
    read = posts.get(f"/questions/{created['id']}", headers=user("bob").headers)
    assert read.status_code == 200 and read.json()["body"] == "Ping @bob: how often?"
    assert read.headers["etag"]


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "", "body": "b"},
        {"title": "t"},
        {"title": "t", "body": "   "},
        {"title": "t", "body": "b" * 30_001},
        {"title": "t", "body": "b", "tags": ["no spaces"]},
        {"title": "t", "body": "b", "tags": ["t"] * 51},
        {"title": "t", "body": "b", "author_id": str(new_id())},
        {"title": "t", "body": "b", "origin": {"author_id": str(new_id()), "source": "x"}},
        {
            "title": "t",
            "body": "b",
            "origin": {
                "author_id": str(new_id()),
                "source": "x",
                "created_at": "2020-01-01T00:00:00",
            },
        },
    ],
)
def test_bad_question_input_is_422(
    posts: TestClient, user: Callable[[str], User], payload: dict[str, object]
) -> None:
    response = posts.post("/questions", json=payload, headers=user("ada").headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_edits_keep_revisions_and_only_asker_owner_or_admin_may_edit(
    posts: TestClient, user: Callable[[str], User], admin: User
) -> None:
    ada, eve = user("ada"), user("eve")
    question = ask(posts, ada, tags=["ops"])
    path = f"/questions/{question['id']}"
    assert posts.patch(path, json={"title": "Mine now"}, headers=eve.headers).status_code == 403
    edited = posts.patch(path, json={"body": "Every month?"}, headers=ada.headers)
    assert edited.status_code == 200 and edited.json()["version"] == 2
    assert edited.json()["tags"] == ["ops"]
    stale = posts.patch(path, json={"title": "x"}, headers={**ada.headers, "If-Match": '"nope"'})
    assert stale.status_code == 412
    by_admin = posts.patch(path, json={"tags": ["vault"]}, headers=admin.headers)
    assert by_admin.status_code == 200 and by_admin.json()["version"] == 3
    unchanged = posts.patch(path, json={"tags": ["vault"]}, headers=ada.headers)
    assert unchanged.json()["version"] == 3

    revisions = posts.get(f"{path}/revisions", headers=eve.headers).json()["items"]
    assert [item["number"] for item in revisions] == [1, 2, 3]
    assert [item["editor_id"] for item in revisions] == [str(ada.id), str(ada.id), str(admin.id)]
    first = posts.get(f"{path}/revisions/1", headers=eve.headers).json()
    assert first["body"] == "Every how often?" and first["tags"] == ["ops"]
    assert posts.get(f"{path}/revisions/9", headers=eve.headers).status_code == 404


def test_a_group_owner_may_edit_and_delete_a_members_question(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    owner, member, other = user("olga"), user("mia"), user("oli")
    group = groups.create(owner, "open")
    groups.add(group, member, "open")
    groups.add(group, other, "open")
    question = ask(posts, member, group_id=str(group))
    path = f"/questions/{question['id']}"
    assert posts.patch(path, json={"title": "x"}, headers=other.headers).status_code == 403
    assert posts.patch(path, json={"title": "Tidied"}, headers=owner.headers).status_code == 200
    assert posts.delete(path, headers=other.headers).status_code == 403
    assert posts.delete(path, headers=owner.headers).status_code == 204
    assert posts.get(path, headers=member.headers).status_code == 404


def test_deleting_a_question_deletes_its_thread_and_says_so(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    question = ask(posts, ada)
    reply = answer(posts, bob, question["id"])
    posts.post(f"/answers/{reply['id']}/comments", json={"body": "Source?"}, headers=ada.headers)
    assert posts.delete(f"/questions/{question['id']}", headers=ada.headers).status_code == 204
    assert posts.get(f"/answers/{reply['id']}", headers=ada.headers).status_code == 404
    types = [event.type for _, event in outbox_events(posts)]
    assert types[-3:] == [
        "knowflow.comment.deleted.v1",
        "knowflow.answer.deleted.v1",
        "knowflow.question.deleted.v1",
    ]


def test_events_carry_the_question_and_private_ones_are_restricted(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada = user("ada")
    public = ask(posts, ada, tags=["ops"])
    secret = groups.create(ada, "private")
    hidden = ask(posts, ada, group_id=str(secret))
    created = {
        event.data["content_id"]: (subject, event)
        for subject, event in outbox_events(posts)
        if event.type == "knowflow.question.created.v1"
    }
    subject, event = created[public["id"]]
    assert subject == "events.public.question.created.v1"
    assert event.data["kind"] == "question" and event.data["thread_id"] == public["id"]
    assert event.data["title"] == public["title"] and event.data["tags"] == ["ops"]
    subject, event = created[hidden["id"]]
    assert subject == "events.restricted.question.created.v1"
    assert event.data["visibility"] == "private"


# --- lists ------------------------------------------------------------------------------


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def test_lists_filter_by_tag_author_group_and_answer_state(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, bob = user("ada"), user("bob")
    group = groups.create(ada, "open")
    plain = ask(posts, ada, tags=["ops"])
    answered = ask(posts, bob, tags=["ops", "vault"])
    in_group = ask(posts, ada, group_id=str(group))
    reply = answer(posts, ada, answered["id"])
    headers = ada.headers

    def listed(**params: Any) -> list[str]:
        response = posts.get("/questions", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert listed() == [in_group["id"], answered["id"], plain["id"]]
    assert listed(tag="ops") == [answered["id"], plain["id"]]
    assert listed(tag="#Vault") == [answered["id"]]
    assert listed(author_id=str(bob.id)) == [answered["id"]]
    assert listed(group_id=str(group)) == [in_group["id"]]
    assert listed(unanswered="true") == [in_group["id"], plain["id"]]
    assert listed(unanswered="false") == [answered["id"]]
    assert listed(unaccepted="false") == []
    posts.put(
        f"/questions/{answered['id']}/accepted-answer",
        json={"answer_id": reply["id"]},
        headers=bob.headers,
    )
    assert listed(unaccepted="false") == [answered["id"]]
    assert listed(unaccepted="true", tag="ops") == [plain["id"]]
    item = posts.get("/questions", params={"tag": "vault"}, headers=headers).json()["items"][0]
    assert item["answer_count"] == 1 and item["has_accepted_answer"] is True
    assert item["accepted_answer_id"] == reply["id"]


def test_sorts_by_activity_and_votes_page_with_a_stable_cursor(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob, cyd = user("ada"), user("bob"), user("cyd")
    first, second, third = (ask(posts, ada, title=f"Question {n}") for n in range(3))
    answer(posts, bob, first["id"])  # the oldest has the latest activity
    for voter in (bob, cyd):
        assert (
            posts.put(
                f"/questions/{second['id']}/vote", json={"value": 1}, headers=voter.headers
            ).status_code
            == 200
        )
    posts.put(f"/questions/{third['id']}/vote", json={"value": -1}, headers=bob.headers)

    def pages(sort: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = posts.get("/questions", params=params, headers=ada.headers).json()
            seen += ids(page)
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert pages("newest") == [third["id"], second["id"], first["id"]]
    assert pages("activity") == [first["id"], third["id"], second["id"]]
    assert pages("votes") == [second["id"], first["id"], third["id"]]
    scored = posts.get("/questions", params={"sort": "votes"}, headers=ada.headers).json()
    assert [item["score"] for item in scored["items"]] == [2, 0, -1]


@pytest.mark.parametrize(
    "params",
    [
        {"sorting": "votes"},
        {"unanswerd": "true"},
        {"tag": "ops", "page": "2"},
        {"sort": "oldest"},
        {"unanswered": "maybe"},
        {"limit": "0"},
    ],
)
def test_unknown_or_bad_query_parameters_are_422(
    posts: TestClient, user: Callable[[str], User], params: dict[str, str]
) -> None:
    response = posts.get("/questions", params=params, headers=user("ada").headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_an_unknown_query_parameter_is_named_in_the_problem(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    question = ask(posts, ada)
    for path in ("/questions", f"/questions/{question['id']}/answers"):
        response = posts.get(path, params={"tga": "ops"}, headers=ada.headers)
        assert response.status_code == 422, path
        assert response.json()["errors"][0]["loc"] == ["query", "tga"]


# Then: a score past 32 bits (PostgreSQL INTEGER), a boolean, a time without a zone (the
# column refuses it: it was a 500), a time before the year 1 in UTC.
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "WzEsMl0",
        "WyJ4IiwieSJd",
        "WzkwMDAwMDAwMDAwLCIwMTkwYTBhMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiXQ",
        "W3RydWUsIjAxOTBhMGEwLTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMCJd",
        encode_cursor(["2026-01-01T00:00:00", "0190a0a0-0000-7000-8000-000000000000"]),
        encode_cursor(["0001-01-01T00:00:00+01:00", "0190a0a0-0000-7000-8000-000000000000"]),
    ],
)
def test_a_forged_list_cursor_is_400(
    posts: TestClient, user: Callable[[str], User], cursor: str
) -> None:
    for sort in ("newest", "votes"):
        response = posts.get(
            "/questions", params={"cursor": cursor, "sort": sort}, headers=user("ada").headers
        )
        assert response.status_code == 400, (sort, response.text)


# --- acceptance -------------------------------------------------------------------------


def test_the_asker_accepts_an_answer_and_may_change_it(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob, cyd = user("ada"), user("bob"), user("cyd")
    question = ask(posts, ada)
    first, second = answer(posts, bob, question["id"]), answer(posts, cyd, question["id"], "Never.")
    path = f"/questions/{question['id']}/accepted-answer"
    assert posts.put(path, json={"answer_id": first["id"]}, headers=bob.headers).status_code == 403
    accepted = posts.put(path, json={"answer_id": first["id"]}, headers=ada.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted_answer_id"] == first["id"]
    assert accepted.json()["version"] == 2
    changed = posts.put(path, json={"answer_id": second["id"]}, headers=ada.headers).json()
    assert changed["accepted_answer_id"] == second["id"]
    listed = posts.get(f"/questions/{question['id']}/answers", headers=ada.headers).json()
    assert [item["id"] for item in listed["items"]] == [second["id"], first["id"]]
    assert [item["is_accepted"] for item in listed["items"]] == [True, False]
    cleared = posts.delete(path, headers=ada.headers).json()
    assert cleared["accepted_answer_id"] is None and cleared["has_accepted_answer"] is False

    events = [event for _, event in outbox_events(posts)]
    accepted_events = [e.data for e in events if e.type == "knowflow.answer.accepted.v1"]
    assert [(e["answer_id"], e["previous_answer_id"]) for e in accepted_events] == [
        (first["id"], None),
        (second["id"], first["id"]),
        (None, second["id"]),
    ]
    updates = [e.data for e in events if e.type == "knowflow.question.updated.v1"]
    assert [u["accepted_answer_id"] for u in updates] == [first["id"], second["id"], None]


def test_an_answer_of_another_question_cannot_be_accepted(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    question, other = ask(posts, ada), ask(posts, ada)
    elsewhere = answer(posts, bob, other["id"])
    response = posts.put(
        f"/questions/{question['id']}/accepted-answer",
        json={"answer_id": elsewhere["id"]},
        headers=ada.headers,
    )
    assert response.status_code == 400
    response = posts.put(
        f"/questions/{question['id']}/accepted-answer",
        json={"answer_id": str(new_id())},
        headers=ada.headers,
    )
    assert response.status_code == 400


def test_a_group_owner_and_an_admin_may_accept(
    posts: TestClient, user: Callable[[str], User], groups: Groups, admin: User
) -> None:
    owner, asker, helper = user("olga"), user("ann"), user("hal")
    group = groups.create(owner, "open")
    for person in (asker, helper):
        groups.add(group, person, "open")
    question = ask(posts, asker, group_id=str(group))
    reply = answer(posts, helper, question["id"])
    path = f"/questions/{question['id']}/accepted-answer"
    assert (
        posts.put(path, json={"answer_id": reply["id"]}, headers=owner.headers).status_code == 200
    )
    assert posts.delete(path, headers=admin.headers).status_code == 200


def test_deleting_the_accepted_answer_clears_the_acceptance(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    question = ask(posts, ada)
    reply = answer(posts, bob, question["id"])
    posts.put(
        f"/questions/{question['id']}/accepted-answer",
        json={"answer_id": reply["id"]},
        headers=ada.headers,
    )
    assert posts.delete(f"/answers/{reply['id']}", headers=bob.headers).status_code == 204
    read = posts.get(f"/questions/{question['id']}", headers=ada.headers).json()
    assert read["accepted_answer_id"] is None and read["answer_count"] == 0


# --- duplicates -------------------------------------------------------------------------


def test_closing_as_a_duplicate_links_both_ways_and_stops_answers(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    original, copy = ask(posts, bob), ask(posts, ada)
    path = f"/questions/{copy['id']}/close"
    assert (
        posts.post(path, json={"duplicate_of": original["id"]}, headers=bob.headers).status_code
        == 403
    )
    assert (
        posts.post(path, json={"duplicate_of": copy["id"]}, headers=ada.headers).status_code == 400
    )
    closed = posts.post(path, json={"duplicate_of": original["id"]}, headers=ada.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["duplicate_of"] == original["id"]
    linked = posts.get(f"/questions/{original['id']}", headers=ada.headers).json()
    assert linked["duplicates"] == [copy["id"]]
    again = posts.post(path, json={"duplicate_of": original["id"]}, headers=ada.headers)
    assert again.status_code == 409
    late = posts.post(f"/questions/{copy['id']}/answers", json={"body": "x"}, headers=bob.headers)
    assert late.status_code == 409
    events = [(subject, e) for subject, e in outbox_events(posts)]
    closing = [e.data for _, e in events if e.type == "knowflow.question.closed.v1"]
    assert closing == [
        {
            "question_id": copy["id"],
            "group_id": None,
            "visibility": "public",
            "duplicate_of": original["id"],
            "closed_by": str(ada.id),
            "version": 2,
        }
    ]
    updated = [e.data for _, e in events if e.type == "knowflow.question.updated.v1"]
    assert updated[-1]["duplicate_of"] == original["id"]


def test_a_question_cannot_be_closed_as_a_duplicate_of_one_the_caller_cannot_read(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, eve = user("ada"), user("eve")
    secret = groups.create(ada, "private")
    hidden = ask(posts, ada, group_id=str(secret))
    mine = ask(posts, eve)
    response = posts.post(
        f"/questions/{mine['id']}/close", json={"duplicate_of": hidden["id"]}, headers=eve.headers
    )
    assert response.status_code == 404
    linked = posts.get(f"/questions/{mine['id']}", headers=eve.headers).json()
    assert linked["duplicate_of"] is None


# --- formalizing ------------------------------------------------------------------------


def test_a_question_thread_is_formalized_once_crediting_every_author(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob, cyd, dan = user("ada"), user("bob"), user("cyd"), user("dan")
    question = ask(posts, ada, tags=["ops"])
    reply = answer(posts, bob, question["id"], "Every 90 days, with vault.")
    posts.post(f"/answers/{reply['id']}/comments", json={"body": "Source?"}, headers=cyd.headers)
    path = f"/questions/{question['id']}/formalize"
    formal = posts.post(path, json={"title": "Rotating secrets"}, headers=dan.headers)
    assert formal.status_code == 201, formal.text
    article = formal.json()
    assert article["source_thread_id"] == question["id"]
    assert article["source_kind"] == "question"
    assert article["tags"] == ["ops"]
    assert [c["user_id"] for c in article["contributors"]] == [
        str(ada.id),
        str(bob.id),
        str(cyd.id),
        str(dan.id),
    ]
    assert "Every 90 days" in article["body"] and "Source?" in article["body"]
    linked = posts.get(f"/questions/{question['id']}", headers=ada.headers).json()
    assert linked["formalized_as"] == [article["id"]]
    again = posts.post(path, json={"title": "Again"}, headers=ada.headers)
    assert again.status_code == 409
    assert again.json()["article_id"] == article["id"]
    assert again.headers["location"] == f"/articles/{article['id']}"
    created = [e.data for _, e in outbox_events(posts) if e.type == "knowflow.article.created.v1"]
    assert created[-1]["source_thread_id"] == question["id"]


# --- origin (imports) -------------------------------------------------------------------


def test_an_import_writes_as_the_original_author_and_time_once(
    posts: TestClient, user: Callable[[str], User], admin: User
) -> None:
    author, helper = new_id(), new_id()
    asked_at = datetime(2019, 5, 1, 12, 0, tzinfo=UTC)
    origin = {
        "author_id": str(author),
        "created_at": asked_at.isoformat(),
        "source": "se:q:1",
        "score": 7,
    }
    payload = {"title": "Imported", "body": "From the dump", "tags": ["ada"], "origin": origin}
    first = posts.post("/questions", json=payload, headers=admin.headers)
    assert first.status_code == 201, first.text
    question = first.json()
    assert question["author_id"] == str(author) and question["score"] == 7
    assert datetime.fromisoformat(question["created_at"]) == asked_at
    replay = posts.post("/questions", json=payload, headers=admin.headers)
    assert replay.status_code == 200 and replay.json()["id"] == question["id"]

    answered_at = asked_at + timedelta(hours=3)
    answer_origin = {
        "author_id": str(helper),
        "created_at": answered_at.isoformat(),
        "source": "se:a:2",
        "score": 2,
    }
    reply_path = f"/questions/{question['id']}/answers"
    reply = posts.post(
        reply_path, json={"body": "Yes", "origin": answer_origin}, headers=admin.headers
    )
    assert reply.status_code == 201 and reply.json()["score"] == 2
    again = posts.post(
        reply_path, json={"body": "Yes", "origin": answer_origin}, headers=admin.headers
    )
    assert again.status_code == 200 and again.json()["id"] == reply.json()["id"]
    comment_origin = {
        "author_id": str(author),
        "created_at": answered_at.isoformat(),
        "source": "se:c:3",
    }
    for _ in range(2):
        comment = posts.post(
            f"/answers/{reply.json()['id']}/comments",
            json={"body": "Thanks", "origin": comment_origin},
            headers=admin.headers,
        )
        assert comment.status_code in (200, 201)
    accepted_at = answered_at + timedelta(hours=1)
    accept = posts.put(
        f"/questions/{question['id']}/accepted-answer",
        json={
            "answer_id": reply.json()["id"],
            "origin": {
                "author_id": str(author),
                "created_at": accepted_at.isoformat(),
                "source": "se:acc:1",
            },
        },
        headers=admin.headers,
    )
    assert accept.status_code == 200
    read = posts.get(f"/questions/{question['id']}", headers=admin.headers).json()
    assert read["answer_count"] == 1
    assert datetime.fromisoformat(read["last_activity_at"]) == accepted_at

    events = [e for _, e in outbox_events(posts)]
    assert [e.type for e in events].count("knowflow.question.created.v1") == 1
    assert [e.type for e in events].count("knowflow.answer.created.v1") == 1
    assert [e.type for e in events].count("knowflow.comment.created.v1") == 1
    answered = next(e.data for e in events if e.type == "knowflow.answer.created.v1")
    assert datetime.fromisoformat(answered["created_at"]) == answered_at
    assert answered["author_id"] == str(helper) and answered["parent_id"] == question["id"]
    accepted = next(e.data for e in events if e.type == "knowflow.answer.accepted.v1")
    assert accepted["accepted_by"] == str(author)


def test_only_an_admin_may_send_an_origin(posts: TestClient, user: Callable[[str], User]) -> None:
    ada = user("ada")
    origin = {"author_id": str(new_id()), "created_at": "2020-01-01T00:00:00Z", "source": "se:q:9"}
    response = posts.post(
        "/questions", json={"title": "t", "body": "b", "origin": origin}, headers=ada.headers
    )
    assert response.status_code == 403
    question = ask(posts, ada)
    for path in (f"/questions/{question['id']}/answers", f"/questions/{question['id']}/comments"):
        assert (
            posts.post(path, json={"body": "b", "origin": origin}, headers=ada.headers).status_code
            == 403
        )


@pytest.mark.parametrize(
    "origin",
    [
        {"created_at": 0},
        {"created_at": "2020-01-01T00:00:00"},
        {"score": False},
        {"score": "3"},
        {"source": ""},
    ],
)
def test_an_origin_outside_its_schema_is_422(
    posts: TestClient, admin: User, origin: dict[str, Any]
) -> None:
    whole = {
        "author_id": str(new_id()),
        "created_at": "2020-01-01T00:00:00Z",
        "source": "s",
        **origin,
    }
    response = posts.post(
        "/questions", json={"title": "t", "body": "b", "origin": whole}, headers=admin.headers
    )
    assert response.status_code == 422, response.text


def test_an_origin_score_written_as_an_integral_number_is_accepted(
    posts: TestClient, admin: User
) -> None:
    """JSON Schema counts 7.0 as an integer; schemathesis sends such values as valid data."""
    origin = {
        "author_id": str(new_id()),
        "created_at": "2020-01-01T00:00:00Z",
        "source": "integral-score",
        "score": 7.0,
    }
    response = posts.post(
        "/questions", json={"title": "t", "body": "b", "origin": origin}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["score"] == 7
