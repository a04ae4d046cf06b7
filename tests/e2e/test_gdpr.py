"""Delete on request (GDPR) and export of one's own data, end to end through the gateway.

Ada posts, asks, follows, is followed, is mentioned and thanked, and is indexed; she exports
her data, then erases it. Afterwards her handle, name and address appear in no service's
answers (posts, search and experts, digests, notifications, identity), the combined report
says what each service removed, her token and password no longer work, a second erasure
is refused, and everyone else's content stays.
"""

import json
import re
from typing import Any

import httpx
import pytest

from deploy.launch import Platform
from tests.e2e.conftest import create_admin
from tests.e2e.test_knowledge_flow import PASSWORD, eventually, register

Json = dict[str, Any]
NAME = re.compile(r"(?<![\w-])(ada|ada@example\.org)(?![\w-])", re.IGNORECASE)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(platform: Platform, gateway: httpx.Client) -> Json:
    admin = create_admin(platform, gateway, "gdpr_admin")
    ada, bob, carol = (register(gateway, name) for name in ("ada", "bob", "carol"))
    a, b, c = ada["headers"], bob["headers"], carol["headers"]
    ok(gateway.patch("/users/me", headers=a, json={"bio": "Ada's bio", "skills": ["k8s"]}))
    ok(
        gateway.post(
            "/follows", headers=a, json={"target_type": "user", "target": bob["user"]["id"]}
        ),
        201,
    )
    ok(
        gateway.post(
            "/follows", headers=b, json={"target_type": "user", "target": ada["user"]["id"]}
        ),
        201,
    )
    ok(
        gateway.post("/follows", headers=a, json={"target_type": "tag", "target": "kubernetes"}),
        201,
    )
    vault = ok(
        gateway.post(
            "/groups", headers=c, json={"name": "Vault", "slug": "vault", "visibility": "private"}
        ),
        201,
    )
    secret = ok(
        gateway.post(
            "/posts", headers=c, json={"body": "Vault plans #kubernetes", "group_id": vault["id"]}
        ),
        201,
    )
    own = ok(
        gateway.post("/posts", headers=a, json={"body": "Kubernetes upgrade notes #kubernetes"}),
        201,
    )
    mention = ok(
        gateway.post("/posts", headers=b, json={"body": "Ask @ada about kubernetes upgrades"}), 201
    )
    question = ok(
        gateway.post(
            "/questions", headers=a, json={"title": "Kubernetes upgrades?", "body": "How often?"}
        ),
        201,
    )
    answer = ok(
        gateway.post(
            f"/questions/{question['id']}/answers",
            headers=b,
            json={"body": "Every quarter, @ada; kubernetes moves fast."},
        ),
        201,
    )
    ok(gateway.post(f"/posts/{mention['id']}/reactions", headers=a, json={"kind": "thanks"}), 201)
    ok(gateway.post(f"/posts/{own['id']}/reactions", headers=b, json={"kind": "thanks"}), 201)
    # Indexed, and known as an expert, before the erasure.
    eventually(
        lambda: {own["id"], mention["id"]}
        <= {
            i["id"]
            for i in gateway.get("/search", headers=b, params={"q": "kubernetes"}).json()["items"]
        }
    )
    eventually(
        lambda: any(
            e["handle"] == "ada"
            for e in gateway.get("/experts", headers=b, params={"topic": "kubernetes"}).json()[
                "experts"
            ]
        )
    )
    eventually(lambda: gateway.get("/notifications", headers=a).json()["items"])
    return {
        "admin": admin,
        "ada": ada,
        "bob": bob,
        "carol": carol,
        "secret": secret,
        "own": own,
        "mention": mention,
        "question": question,
        "answer": answer,
    }


def test_export_holds_exactly_her_own_data(gateway: httpx.Client, world: Json) -> None:
    a = world["ada"]["headers"]
    identity = ok(gateway.get("/users/me/export", headers=a))
    assert identity["profile"]["email"] == "ada@example.org"
    assert identity["profile"]["skills"] == ["k8s"]
    assert {f["target"] for f in identity["follows"]} == {world["bob"]["user"]["id"], "kubernetes"}
    assert identity["memberships"] == []
    posts = ok(gateway.get(identity["parts"]["posts"].removeprefix("/api/v1"), headers=a))
    assert [p["id"] for p in posts["posts"]] == [world["own"]["id"]]
    assert [q["id"] for q in posts["questions"]] == [world["question"]["id"]]
    assert posts["answers"] == []
    assert [r["post_id"] for r in posts["reactions"]] == [world["mention"]["id"]]
    notifications = ok(
        gateway.get(identity["parts"]["notifications"].removeprefix("/api/v1"), headers=a)
    )
    assert notifications["email"] == "ada@example.org"
    assert "channels" in notifications["preferences"]
    everything = json.dumps([identity, posts, notifications])
    assert world["secret"]["id"] not in everything and "Vault" not in everything
    assert "bob@example.org" not in everything
    for path in ("/users/me/export", "/users/me/export/posts", "/users/me/export/notifications"):
        assert gateway.get(path).status_code == 401
        assert gateway.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_after_erasure_her_name_is_nowhere_and_others_content_stays(
    gateway: httpx.Client, world: Json
) -> None:
    ada, bob, admin = world["ada"], world["bob"], world["admin"]
    a, b = ada["headers"], bob["headers"]
    ada_id = ada["user"]["id"]
    wrong = gateway.post("/users/me/erasure", headers=a, json={"password": "not hers"})
    assert wrong.status_code == 403
    erasure = ok(gateway.post("/users/me/erasure", headers=a, json={"password": PASSWORD}), 202)

    def report() -> Json | None:
        body = ok(gateway.get("/users/erasure-report", params={"erasure_id": erasure["id"]}))
        return body if body["complete"] else None

    final = eventually(report, timeout=30)
    removed = {part["service"]: part["removed"] for part in final["reports"]}
    assert set(removed) == {"identity", "posts", "search", "digests", "notifications"}
    assert removed["identity"]["follows"] == 2 and removed["identity"]["followers"] == 1
    assert removed["posts"]["mentions_removed"] == 2
    assert removed["notifications"]["email"] == 1
    assert removed["search"]["profile"] == 1  # skills too, unless the profile event came first
    assert not NAME.search(json.dumps(final))

    # Her token and her password are refused; a second erasure is a clear 409.
    assert gateway.get("/users/me", headers=a).status_code == 401
    login = gateway.post("/auth/login", json={"login": "ada", "password": PASSWORD})
    assert login.status_code == 401
    again = gateway.post(
        f"/users/{ada_id}/erasure", headers=admin["headers"], json={"confirm": True}
    )
    assert again.status_code == 409 and again.json()["erasure_id"] == erasure["id"]

    # Nowhere: identity, posts, search and experts, notifications, digests.
    def answers() -> str:
        pages = [
            gateway.get(f"/users/{ada_id}", headers=b).json(),
            gateway.get("/follows", headers=b).json(),
            gateway.get("/posts", headers=b).json(),
            gateway.get(f"/posts/{world['own']['id']}", headers=b).json(),
            gateway.get(f"/posts/{world['mention']['id']}", headers=b).json(),
            gateway.get(f"/questions/{world['question']['id']}", headers=b).json(),
            gateway.get(f"/questions/{world['question']['id']}/answers", headers=b).json(),
            gateway.get("/search", headers=b, params={"q": "kubernetes"}).json(),
            gateway.get("/experts", headers=b, params={"topic": "kubernetes"}).json(),
            gateway.get("/notifications", headers=b).json(),
            gateway.get(f"/digests/users/{bob['user']['id']}", headers=admin["headers"]).json(),
            gateway.get(f"/digests/users/{ada_id}", headers=admin["headers"]).json(),
        ]
        return json.dumps(pages)

    eventually(lambda: not NAME.search(answers()), timeout=30)
    assert gateway.get("/search", headers=b, params={"q": "ada"}).json()["items"] == []
    tombstone = ok(gateway.get(f"/users/{ada_id}", headers=b))
    assert tombstone["display_name"] == "Former member" and tombstone["active"] is False

    # Everyone else's content stays; so does hers, under the former member's name.
    own = ok(gateway.get(f"/posts/{world['own']['id']}", headers=b))
    assert own["body"] == "Kubernetes upgrade notes #kubernetes"
    assert own["author_handle"] == tombstone["handle"]
    answer = ok(gateway.get(f"/answers/{world['answer']['id']}", headers=b))
    assert answer["body"] == "Every quarter, [former member]; kubernetes moves fast."
    assert answer["author_handle"] == "bob"
    found = gateway.get("/search", headers=b, params={"q": "kubernetes"}).json()["items"]
    assert {world["own"]["id"], world["mention"]["id"]} <= {item["id"] for item in found}
