"""Knowledge health: per tag and per group, for administrators and group owners."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, ask
from shared.auth import TokenIssuer
from shared.ids import new_id


def imported(
    client: TestClient, admin: User, path: str, at: datetime, **fields: Any
) -> dict[str, Any]:
    """Write an item as imported at `at` by a fresh author (admin-only origin)."""
    author = fields.pop("author", new_id())
    origin = {"author_id": str(author), "created_at": at.isoformat(), "source": f"t:{new_id()}"}
    response = client.post(path, json={**fields, "origin": origin}, headers=admin.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_tag_health_counts_answers_medians_old_unanswered_and_who_knows(
    posts: TestClient, admin: User
) -> None:
    now = datetime.now(UTC)
    expert = new_id()
    q1 = imported(
        posts, admin, "/questions", now - timedelta(hours=50), title="a", body="b", tags=["ops"]
    )
    q2 = imported(
        posts, admin, "/questions", now - timedelta(hours=40), title="a", body="b", tags=["ops"]
    )
    imported(
        posts, admin, "/questions", now - timedelta(hours=30), title="a", body="b", tags=["ops"]
    )
    imported(
        posts, admin, "/questions", now - timedelta(hours=2), title="a", body="b", tags=["ops"]
    )
    imported(
        posts, admin, "/questions", now - timedelta(hours=48), title="a", body="b", tags=["lonely"]
    )
    first = imported(
        posts,
        admin,
        f"/questions/{q1['id']}/answers",
        now - timedelta(hours=48),
        body="x",
        author=expert,
    )
    imported(posts, admin, f"/questions/{q1['id']}/answers", now - timedelta(hours=47), body="y")
    imported(
        posts,
        admin,
        f"/questions/{q2['id']}/answers",
        now - timedelta(hours=36),
        body="z",
        author=expert,
    )
    posts.put(
        f"/questions/{q1['id']}/accepted-answer",
        json={
            "answer_id": first["id"],
            "origin": {
                "author_id": str(q1["author_id"]),
                "created_at": (now - timedelta(hours=46)).isoformat(),
                "source": "acc",
            },
        },
        headers=admin.headers,
    )
    response = posts.get(
        "/knowledge-health/tags", params={"unanswered_after_hours": 24}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    report = response.json()
    by_tag = {item["tag"]: item for item in report["items"]}
    ops = by_tag["ops"]
    assert ops["questions"] == 4 and ops["answered_share"] == 0.5
    assert ops["median_hours_to_first_answer"] == 3.0  # 2 h and 4 h
    assert ops["median_hours_to_acceptance"] == 4.0
    assert ops["unanswered"] == 2 and ops["unanswered_older"] == 1
    assert ops["evidence_holders"] == 2 and ops["accepted_answerers"] == 1
    assert ops["at_risk"] is False
    lonely = by_tag["lonely"]
    assert lonely["unanswered_older"] == 1 and lonely["evidence_holders"] == 0
    assert lonely["at_risk"] is True
    assert report["at_risk"] == ["lonely"]


def test_group_owners_read_their_group_and_nobody_else_does(
    posts: TestClient, user: Callable[[str], User], groups: Groups, admin: User
) -> None:
    owner, member, eve = user("olga"), user("mia"), user("eve")
    group = groups.create(owner, "open")
    groups.add(group, member, "open")
    ask(posts, member, group_id=str(group), tags=["ops"])
    ask(posts, eve, tags=["ops"])  # outside the group: not counted for it
    for who in (member, eve):
        assert (
            posts.get(f"/knowledge-health/groups/{group}", headers=who.headers).status_code == 403
        )
        assert posts.get("/knowledge-health/tags", headers=who.headers).status_code == 403
    mine = posts.get(f"/knowledge-health/groups/{group}", headers=owner.headers)
    assert mine.status_code == 200, mine.text
    report = mine.json()
    assert report["questions"] == 1 and report["unanswered"] == 1
    assert [item["tag"] for item in report["tags"]] == ["ops"]
    tags = posts.get(
        "/knowledge-health/tags", params={"group_id": str(group)}, headers=owner.headers
    )
    assert tags.status_code == 200 and tags.json()["items"][0]["questions"] == 1
    everything = posts.get("/knowledge-health/tags", headers=admin.headers).json()
    assert {item["tag"]: item["questions"] for item in everything["items"]}["ops"] == 2
    unknown = posts.get(
        "/knowledge-health/tags", params={"unanswered_after": 3}, headers=admin.headers
    )
    assert unknown.status_code == 422


def test_an_unknown_group_is_a_404_even_for_an_admin(posts: TestClient, admin: User) -> None:
    response = posts.get(f"/knowledge-health/groups/{new_id()}", headers=admin.headers)
    assert response.status_code == 404
    response = posts.get(
        "/knowledge-health/tags", params={"group_id": str(new_id())}, headers=admin.headers
    )
    assert response.status_code == 404


def test_an_admin_reads_a_private_groups_figures_without_its_content(
    posts: TestClient, user: Callable[[str], User], groups: Groups, admin: User
) -> None:
    owner = user("olga")
    secret = groups.create(owner, "private")
    ask(posts, owner, group_id=str(secret), tags=["ops"])
    response = posts.get(f"/knowledge-health/groups/{secret}", headers=admin.headers)
    assert response.status_code == 200 and response.json()["questions"] == 1


def test_an_analyst_reads_every_figure_like_an_admin_and_a_member_does_not(
    posts: TestClient, user: Callable[[str], User], groups: Groups, token_issuer: TokenIssuer
) -> None:
    owner = user("olga")
    secret = groups.create(owner, "private")
    ask(posts, owner, group_id=str(secret), tags=["ops"])
    analyst_id = new_id()
    analyst = {
        "Authorization": "Bearer "
        + token_issuer.issue(user_id=analyst_id, handle="ana", role="analyst")
    }
    member = {
        "Authorization": "Bearer "
        + token_issuer.issue(user_id=new_id(), handle="mo", role="member")
    }
    tags = posts.get("/knowledge-health/tags", headers=analyst)
    assert tags.status_code == 200 and tags.json()["items"][0]["tag"] == "ops"
    figures = posts.get(f"/knowledge-health/groups/{secret}", headers=analyst)
    assert figures.status_code == 200 and figures.json()["questions"] == 1
    # Figures, not content: the private group's questions stay hidden from the analyst.
    assert (
        posts.get("/questions", params={"group_id": str(secret)}, headers=analyst).json()["items"]
        == []
    )
    assert posts.get("/knowledge-health/tags", headers=member).status_code == 403
    unknown = posts.get(f"/knowledge-health/groups/{new_id()}", headers=analyst)
    assert unknown.status_code == 404
