"""End to end through the gateway only: three people, a private group, flow and stock.

A and B share a private group; C does not. Whatever A writes in the group must reach
B (search, experts, digest) and never C, through any path.
"""

from typing import Any

import httpx
import pytest

from shared.testing.fixtures import eventually

Json = dict[str, Any]


# Not containing the handle: the password policy refuses that.
PASSWORD = "a long password of letters"


def register(gateway: httpx.Client, handle: str) -> Json:
    response = gateway.post(
        "/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": PASSWORD,
            "display_name": handle.title(),
        },
    )
    assert response.status_code == 201, response.text
    account: Json = response.json()
    account["headers"] = {"Authorization": f"Bearer {account['access_token']}"}
    return account


@pytest.fixture(scope="module")
def world(gateway: httpx.Client) -> Json:
    a, b, c = register(gateway, "alice"), register(gateway, "bob"), register(gateway, "carol")
    group = gateway.post(
        "/groups",
        headers=a["headers"],
        json={"name": "PKM circle", "slug": "pkm-circle", "visibility": "private"},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    added = gateway.post(
        f"/groups/{group_id}/members", headers=a["headers"], json={"user_id": b["user"]["id"]}
    )
    assert added.status_code == 201, added.text
    for follower in (b, c):
        response = gateway.post(
            "/follows", headers=follower["headers"], json={"target_type": "tag", "target": "pkm"}
        )
        assert response.status_code == 201, response.text
    followed_group = gateway.post(
        "/follows", headers=b["headers"], json={"target_type": "group", "target": group_id}
    )
    assert followed_group.status_code == 201, followed_group.text

    def post(body: str, group: str | None = None) -> Json:
        response = gateway.post(
            "/posts", headers=a["headers"], json={"body": body, "group_id": group}
        )
        assert response.status_code == 201, response.text
        created: Json = response.json()
        return created

    def article(title: str, body: str, group: str | None = None) -> Json:
        response = gateway.post(
            "/articles",
            headers=a["headers"],
            json={"title": title, "body": body, "tags": ["pkm"], "group_id": group},
        )
        assert response.status_code == 201, response.text
        created: Json = response.json()
        return created

    public_post = post("Zettelkasten notes link ideas together #pkm")
    private_post = post("Our secret roadmap for the knowledge garden #pkm", group_id)
    public_article = article("Evergreen notes", "Evergreen notes grow over time. #pkm")
    private_article = article(
        "Confidential wiki plan", "The wiki migration plan stays in the circle.", group_id
    )
    reply = gateway.post(
        "/posts",
        headers=b["headers"],
        json={
            "body": "Great point about zettelkasten, @alice #pkm",
            "parent_id": public_post["id"],
        },
    )
    assert reply.status_code == 201, reply.text
    return {
        "a": a,
        "b": b,
        "c": c,
        "group_id": group_id,
        "public": {public_post["id"], public_article["id"]},
        "private": {private_post["id"], private_article["id"]},
        "private_post": private_post,
        "private_article": private_article,
        "reply": reply.json(),
    }


def search_ids(gateway: httpx.Client, who: Json, query: str) -> set[str]:
    response = gateway.get("/search", params={"q": query, "limit": 50}, headers=who["headers"])
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def test_member_finds_public_and_private_items_with_highlights(
    gateway: httpx.Client, world: Json
) -> None:
    b = world["b"]
    everything = world["public"] | world["private"]
    eventually(lambda: everything <= search_ids(gateway, b, "pkm") | search_ids(gateway, b, "wiki"))

    def marked() -> bool:
        response = gateway.get("/search", params={"q": "zettelkasten"}, headers=b["headers"])
        return any("<mark>" in item["snippet"].lower() for item in response.json()["items"])

    # Checked until the index settles: once, on a loaded machine, the first answer right
    # after the items became searchable had no highlight (not reproduced; cause not found).
    eventually(marked)
    secret = search_ids(gateway, b, "secret roadmap")
    assert world["private_post"]["id"] in secret


def test_non_member_search_never_returns_private_items(gateway: httpx.Client, world: Json) -> None:
    c = world["c"]
    eventually(
        lambda: world["public"]
        <= search_ids(gateway, c, "pkm") | search_ids(gateway, c, "evergreen")
    )
    for query in ("pkm", "secret roadmap", "confidential wiki", "circle", "knowledge garden"):
        assert not (search_ids(gateway, c, query) & world["private"]), query
    by_group = gateway.get(
        "/search", params={"q": "pkm", "group_id": world["group_id"]}, headers=c["headers"]
    )
    assert by_group.status_code in (200, 404)
    if by_group.status_code == 200:
        assert by_group.json()["items"] == []


def experts(gateway: httpx.Client, who: Json, topic: str) -> list[Json]:
    response = gateway.get("/experts", params={"topic": topic}, headers=who["headers"])
    assert response.status_code == 200, response.text
    found: list[Json] = response.json()["experts"]
    return found


def test_experts_on_pkm_lists_alice_with_evidence(gateway: httpx.Client, world: Json) -> None:
    a_id = world["a"]["user"]["id"]

    def alice_first() -> Json | None:
        ranked = experts(gateway, world["b"], "pkm")
        return ranked[0] if ranked and ranked[0]["user_id"] == a_id else None

    alice = eventually(alice_first)
    evidence_ids = {item["content_id"] for item in alice["evidence"]}
    assert evidence_ids & world["public"]
    assert alice["handle"] == "alice"


def test_experts_evidence_for_non_member_has_no_private_items(
    gateway: httpx.Client, world: Json
) -> None:
    a_id = world["a"]["user"]["id"]
    eventually(lambda: any(e["user_id"] == a_id for e in experts(gateway, world["c"], "pkm")))
    for topic in ("pkm", "wiki", "roadmap", "confidential"):
        for expert in experts(gateway, world["c"], topic):
            evidence = {item["content_id"] for item in expert["evidence"]}
            assert not (evidence & world["private"]), topic


def digest_ids(gateway: httpx.Client, who: Json) -> set[str]:
    response = gateway.get("/digests/me", params={"period": "daily"}, headers=who["headers"])
    assert response.status_code == 200, response.text
    return {
        item["content_id"] for section in response.json()["sections"] for item in section["items"]
    }


def test_bobs_daily_digest_has_alices_public_and_group_items(
    gateway: httpx.Client, world: Json
) -> None:
    expected = world["public"] | world["private"]
    eventually(lambda: expected <= digest_ids(gateway, world["b"]))
    assert world["reply"]["id"] not in digest_ids(gateway, world["b"])  # bob's own reply


def test_carols_digest_has_public_pkm_items_only(gateway: httpx.Client, world: Json) -> None:
    eventually(lambda: world["public"] <= digest_ids(gateway, world["c"]))
    assert not (digest_ids(gateway, world["c"]) & world["private"])


def test_non_member_gets_404_for_private_items_and_group(
    gateway: httpx.Client, world: Json
) -> None:
    c = world["c"]
    assert (
        gateway.get(f"/posts/{world['private_post']['id']}", headers=c["headers"]).status_code
        == 404
    )
    assert (
        gateway.get(f"/articles/{world['private_article']['id']}", headers=c["headers"]).status_code
        == 404
    )
    assert gateway.get(f"/groups/{world['group_id']}", headers=c["headers"]).status_code == 404
    listed = gateway.get(
        "/posts", params={"author_id": world["a"]["user"]["id"]}, headers=c["headers"]
    ).json()
    assert not ({item["id"] for item in listed["items"]} & world["private"])
    # The member reads the same items.
    b = world["b"]
    assert (
        gateway.get(f"/posts/{world['private_post']['id']}", headers=b["headers"]).status_code
        == 200
    )


def test_gateway_requires_a_valid_token(gateway: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = gateway.get("/search", params={"q": "pkm"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
