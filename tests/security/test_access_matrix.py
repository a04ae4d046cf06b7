"""BOLA/BFLA matrix: every id-taking operation, tried by the owner, a member, an outsider and
an admin, through the gateway. Private group content answers 404 to non-members (its
existence is not revealed), someone else's content answers 403 to readers who may see it,
admin-only operations answer 403 to everyone else, and being an admin grants no access
to a private group's content.
"""

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import uuid4

import httpx
import pytest

from deploy.launch import Platform
from shared.testing.fixtures import wait_for
from tests.e2e.conftest import ADMIN_PASSWORD, create_admin, every_item
from tests.e2e.test_knowledge_flow import PASSWORD, register

Json = dict[str, Any]
ACTORS = ("owner", "member", "outsider", "admin")


@dataclass(frozen=True)
class Case:
    """One operation on someone's resource and the status each actor must get."""

    method: str
    path: str
    expected: dict[str, int]
    body: Json | None = None
    params: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(platform: Platform, gateway: httpx.Client) -> Json:
    """An admin, an owner of a private and an open group, a member, an outsider, and content."""
    people = {name: register(gateway, f"sec_{name}") for name in ACTORS[:3]}
    assert not people["owner"]["user"]["is_admin"], "registering first makes nobody admin"
    people["admin"] = create_admin(platform, gateway, "sec_admin")
    owner, member = people["owner"]["headers"], people["member"]["headers"]

    def created(response: httpx.Response) -> Json:
        assert response.status_code == 201, response.text
        body: Json = response.json()
        return body

    private = created(
        gateway.post(
            "/groups",
            headers=owner,
            json={"name": "Vault", "slug": "sec-vault", "visibility": "private"},
        )
    )
    open_group = created(
        gateway.post(
            "/groups",
            headers=owner,
            json={"name": "Agora", "slug": "sec-agora", "visibility": "open"},
        )
    )
    created(
        gateway.post(
            f"/groups/{private['id']}/members",
            headers=owner,
            json={"user_id": people["member"]["user"]["id"]},
        )
    )
    private_post = created(
        gateway.post(
            "/posts", headers=owner, json={"body": "vault plans", "group_id": private["id"]}
        )
    )
    public_post = created(gateway.post("/posts", headers=owner, json={"body": "open plans"}))
    private_article = created(
        gateway.post(
            "/articles",
            headers=owner,
            json={"title": "Vault wiki", "body": "inside", "group_id": private["id"]},
        )
    )
    public_article = created(
        gateway.post("/articles", headers=owner, json={"title": "Open wiki", "body": "outside"})
    )
    follow = created(
        gateway.post("/follows", headers=owner, json={"target_type": "tag", "target": "vault"})
    )
    created(
        gateway.post(
            f"/posts/{private_post['id']}/reactions", headers=member, json={"kind": "thanks"}
        )
    )
    private_question = created(
        gateway.post(
            "/questions",
            headers=owner,
            json={"title": "Vault keys?", "body": "where", "group_id": private["id"]},
        )
    )
    private_answer = created(
        gateway.post(
            f"/questions/{private_question['id']}/answers", headers=member, json={"body": "here"}
        )
    )
    private_comment = created(
        gateway.post(
            f"/answers/{private_answer['id']}/comments", headers=member, json={"body": "sure"}
        )
    )
    public_question = created(
        gateway.post("/questions", headers=owner, json={"title": "Open keys?", "body": "where"})
    )
    public_answer = created(
        gateway.post(
            f"/questions/{public_question['id']}/answers", headers=member, json={"body": "there"}
        )
    )
    scim_client = created(
        gateway.post("/scim-clients", headers=people["admin"]["headers"], json={"name": "hr"})
    )
    join_request = created(
        gateway.post(
            f"/groups/{private['id']}/join-requests",
            headers=people["outsider"]["headers"],
            json={"message": "let me in"},
        )
    )
    return {
        "people": people,
        "scim_client": scim_client,
        "private_question": private_question["id"],
        "private_answer": private_answer["id"],
        "private_comment": private_comment["id"],
        "public_question": public_question["id"],
        "public_answer": public_answer["id"],
        "private_group": private["id"],
        "open_group": open_group["id"],
        "private_post": private_post["id"],
        "public_post": public_post["id"],
        "private_article": private_article["id"],
        "public_article": public_article["id"],
        "follow": follow["id"],
        "join_request": join_request,
    }


def expect(owner: int, member: int, outsider: int, admin: int) -> dict[str, int]:
    return {"owner": owner, "member": member, "outsider": outsider, "admin": admin}


def cases(world: Json) -> list[Case]:
    group, open_group = world["private_group"], world["open_group"]
    pp, up = world["private_post"], world["public_post"]
    pa, ua = world["private_article"], world["public_article"]
    owner_id = world["people"]["owner"]["user"]["id"]
    member_id = world["people"]["member"]["user"]["id"]
    hidden = expect(200, 200, 404, 404)
    return [
        # Reads of a private group's content: members only; admins are not members.
        Case("GET", f"/posts/{pp}", hidden),
        Case("GET", f"/posts/{pp}/replies", hidden),
        Case("GET", f"/articles/{pa}", hidden),
        Case("GET", f"/articles/{pa}/revisions", hidden),
        Case("GET", f"/articles/{pa}/revisions/1", hidden),
        Case("GET", f"/groups/{group}", hidden),
        Case("GET", f"/groups/{group}/members", hidden),
        # Public content and people: everyone signed in.
        Case("GET", f"/posts/{up}", expect(200, 200, 200, 200)),
        Case("GET", f"/articles/{ua}", expect(200, 200, 200, 200)),
        Case("GET", f"/groups/{open_group}", expect(200, 200, 200, 200)),
        Case("GET", f"/users/{owner_id}", expect(200, 200, 200, 200)),
        # Erasing someone else: admins only (an admin erases themselves with their password);
        # a wrong password erases no one; an erasure's report is found by its id alone.
        Case(
            "POST", f"/users/{owner_id}/erasure", expect(403, 403, 403, 0), body={"confirm": True}
        ),
        Case(
            "POST", f"/users/{uuid4()}/erasure", expect(403, 403, 403, 404), body={"confirm": True}
        ),
        Case(
            "POST",
            f"/users/{world['people']['admin']['user']['id']}/erasure",
            expect(403, 403, 403, 403),
            body={"confirm": True},
        ),
        Case("POST", "/users/me/erasure", expect(403, 403, 403, 403), body={"password": "guess"}),
        Case(
            "GET",
            "/users/erasure-report",
            expect(404, 404, 404, 404),
            params={"erasure_id": str(uuid4())},
        ),
        # Someone else's digest: admins only.
        Case("GET", f"/digests/users/{owner_id}", expect(403, 403, 403, 200)),
        # A person's topics: anyone signed in (judged by what each reader may see); 404 unknown.
        Case("GET", f"/experts/{member_id}", expect(200, 200, 200, 200)),
        Case("GET", f"/experts/{uuid4()}", expect(404, 404, 404, 404)),
        # Changing someone else's content: 403 where it may be seen, 404 where it may not.
        Case("PATCH", f"/posts/{pp}", expect(0, 403, 404, 404), body={"body": "defaced"}),
        Case("DELETE", f"/posts/{pp}", expect(0, 403, 404, 404)),
        Case("PATCH", f"/posts/{up}", expect(0, 403, 403, 403), body={"body": "defaced"}),
        Case("DELETE", f"/posts/{up}", expect(0, 403, 403, 403)),
        Case(
            "PATCH",
            f"/articles/{pa}",
            expect(0, 403, 404, 404),
            body={"title": "defaced"},
        ),
        Case("DELETE", f"/articles/{pa}", expect(0, 403, 404, 404)),
        Case(
            "PATCH",
            f"/articles/{ua}",
            expect(0, 403, 403, 403),
            body={"title": "defaced"},
        ),
        Case("DELETE", f"/articles/{ua}", expect(0, 403, 403, 403)),
        # Acting on a private group's content as an outsider reveals nothing.
        Case("POST", "/posts", expect(0, 0, 404, 404), body={"body": "in", "group_id": group}),
        Case("POST", "/posts", expect(0, 0, 404, 404), body={"body": "re", "parent_id": pp}),
        Case(
            "POST",
            "/articles",
            expect(0, 0, 404, 404),
            body={"title": "t", "body": "b", "group_id": group},
        ),
        Case("POST", f"/posts/{pp}/reactions", expect(0, 0, 404, 404), body={"kind": "thanks"}),
        Case("DELETE", f"/posts/{pp}/reactions/thanks", expect(0, 0, 404, 404)),
        Case("POST", f"/posts/{pp}/formalize", expect(0, 0, 404, 404), body={"title": "mine"}),
        # Membership is the owner's to manage; a private group stays hidden.
        Case(
            "POST",
            f"/groups/{group}/members",
            expect(0, 403, 404, 404),
            body={"user_id": member_id},
        ),
        Case("DELETE", f"/groups/{group}/members/{owner_id}", expect(0, 403, 404, 404)),
        Case("DELETE", f"/groups/{open_group}/members/{owner_id}", expect(0, 403, 403, 403)),
        # Someone else's follow does not exist for anyone else.
        Case("DELETE", f"/follows/{world['follow']}", expect(0, 404, 404, 404)),
        # Provisioning clients are the admins' (revoking is left out: it would end it).
        Case("GET", "/scim-clients", expect(403, 403, 403, 200)),
        Case("POST", "/scim-clients", expect(403, 403, 403, 0), body={"name": "mine"}),
        Case("DELETE", f"/scim-clients/{world['scim_client']['id']}", expect(403, 403, 403, 0)),
        # Ending or restoring someone's access: admins only (the admin's deactivation of the
        # owner is not tried: it would change the world; reactivating an active person is a no-op).
        Case("POST", f"/users/{owner_id}/deactivate", expect(403, 403, 403, 0)),
        Case("POST", f"/users/{member_id}/deactivate", expect(403, 403, 403, 0)),
        Case("POST", f"/users/{owner_id}/reactivate", expect(403, 403, 403, 200)),
        *qa_cases(world),
        *roles_cases(world),
        *people_and_join_cases(world),
    ]


def people_and_join_cases(world: Json) -> list[Case]:
    """The people directory and requests to join a private group (issue 11).

    The outsider has asked to join the private group. Its owner decides (not tried: it
    would change the world); its plain member may not; the outsider and an admin outside
    it do not see it. Nobody asks to join an open group (it is joined directly).
    """
    group, open_group = world["private_group"], world["open_group"]
    request = world["join_request"]["id"]
    return [
        Case("GET", "/users", expect(200, 200, 200, 200)),
        Case("GET", "/users", expect(200, 200, 200, 200), params={"q": "sec_"}),
        Case("GET", "/users", expect(403, 403, 403, 200), params={"include_inactive": "true"}),
        Case("GET", "/users", expect(403, 403, 403, 200), params={"role": "admin"}),
        Case("GET", f"/groups/{group}/join-requests", expect(200, 403, 404, 404)),
        Case("GET", f"/groups/{open_group}/join-requests", expect(200, 403, 403, 403)),
        Case("POST", f"/groups/{group}/join-requests", expect(409, 409, 409, 0), body={}),
        Case("POST", f"/groups/{open_group}/join-requests", expect(400, 400, 400, 400), body={}),
        Case("POST", f"/groups/{uuid4()}/join-requests", expect(404, 404, 404, 404), body={}),
        Case("POST", f"/groups/{group}/join-requests/{request}/approve", expect(0, 403, 404, 404)),
        Case("POST", f"/groups/{group}/join-requests/{request}/decline", expect(0, 403, 404, 404)),
        Case("GET", "/users/me/join-requests", expect(200, 200, 200, 200)),
    ]


def roles_cases(world: Json) -> list[Case]:
    """Roles, group edits, ownership and the audit log (issue 10).

    The member is a plain member (no moderator): they manage nobody. Admins have no say in
    a private group they are not in, and are the only ones to change organisation roles
    or read the audit log. The owner's own changes are not tried (they would change the world).
    """
    group, open_group = world["private_group"], world["open_group"]
    owner_id = world["people"]["owner"]["user"]["id"]
    member_id = world["people"]["member"]["user"]["id"]
    outsider_id = world["people"]["outsider"]["user"]["id"]
    return [
        # Someone else's organisation role: admins only (the same role again changes nothing).
        Case("PUT", f"/users/{owner_id}/role", expect(403, 403, 403, 200), body={"role": "member"}),
        Case("PUT", f"/users/{member_id}/role", expect(403, 403, 403, 0), body={"role": "admin"}),
        # A private group: its owner edits, hands over and changes roles; others are refused.
        Case("PATCH", f"/groups/{group}", expect(0, 403, 404, 404), body={"name": "defaced"}),
        Case("PATCH", f"/groups/{open_group}", expect(0, 403, 403, 403), body={"name": "x"}),
        Case(
            "POST",
            f"/groups/{group}/transfer",
            expect(0, 403, 404, 404),
            body={"user_id": member_id},
        ),
        Case(
            "POST",
            f"/groups/{open_group}/transfer",
            expect(0, 403, 403, 403),
            body={"user_id": outsider_id},
        ),
        Case(
            "PUT",
            f"/groups/{group}/members/{member_id}/role",
            expect(0, 403, 404, 404),
            body={"role": "moderator"},
        ),
        Case(
            "PUT",
            f"/groups/{group}/members/{owner_id}/role",
            expect(0, 403, 404, 404),
            body={"role": "member"},
        ),
        # Hiding content: the group's moderators and owner, and admins; a plain member may not.
        Case("PUT", f"/posts/{world['private_post']}/hidden", expect(0, 403, 404, 404)),
        Case("DELETE", f"/posts/{world['private_post']}/hidden", expect(0, 403, 404, 404)),
        Case("PUT", f"/posts/{world['public_post']}/hidden", expect(403, 403, 403, 0)),
        Case("DELETE", f"/posts/{world['public_post']}/hidden", expect(403, 403, 403, 0)),
        # The audit log: admins only, with or without filters.
        Case("GET", "/audit", expect(403, 403, 403, 200)),
        Case("GET", "/audit", expect(403, 403, 403, 200), params={"target": f"group:{group}"}),
    ]


def test_asking_to_join_tells_an_outsider_nothing_of_the_private_group(
    gateway: httpx.Client, world: Json
) -> None:
    """The requester learns the group's id (which they had) and their request's status."""
    outsider = world["people"]["outsider"]["headers"]
    mine = gateway.get("/users/me/join-requests", headers=outsider)
    assert mine.status_code == 200, mine.text
    assert [r["id"] for r in mine.json()["items"]] == [world["join_request"]["id"]]
    owner_id = world["people"]["owner"]["user"]["id"]
    member_id = world["people"]["member"]["user"]["id"]
    for answer in (json.dumps(world["join_request"]), mine.text):
        for secret in ("Vault", "sec-vault", owner_id, member_id, "sec_owner", "sec_member"):
            assert secret not in answer, (secret, answer)
    assert gateway.get(f"/groups/{world['private_group']}", headers=outsider).status_code == 404
    # Its managers see who asks.
    owner = world["people"]["owner"]["headers"]
    listed = gateway.get(f"/groups/{world['private_group']}/join-requests", headers=owner)
    assert [item["handle"] for item in listed.json()["items"]] == ["sec_outsider"]


ROLE_OPERATIONS = (
    ("PUT", "/users/{user}/role", {"role": "admin"}),
    ("PATCH", "/groups/{group}", {"name": "x"}),
    ("POST", "/groups/{group}/transfer", {"user_id": "{user}"}),
    ("PUT", "/groups/{group}/members/{user}/role", {"role": "moderator"}),
    ("GET", "/audit", None),
    ("PUT", "/posts/{post}/hidden", None),
    ("DELETE", "/posts/{post}/hidden", None),
    ("GET", "/users", None),
    ("GET", "/users/me/join-requests", None),
    ("GET", "/groups/{group}/join-requests", None),
    ("POST", "/groups/{group}/join-requests", {"message": "hi"}),
    ("POST", "/groups/{group}/join-requests/{request}/approve", None),
    ("POST", "/groups/{group}/join-requests/{request}/decline", None),
)


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic YWRhOnB3"])
def test_role_moderation_audit_people_and_join_operations_refuse_a_missing_or_bad_token(
    gateway: httpx.Client, world: Json, authorization: str | None
) -> None:
    user, group = world["people"]["member"]["user"]["id"], world["private_group"]
    headers = {"Authorization": authorization} if authorization else {}
    for method, template, body in ROLE_OPERATIONS:
        path = template.format(
            user=user, group=group, post=world["private_post"], request=world["join_request"]["id"]
        )
        payload = {k: str(v).format(user=user) for k, v in body.items()} if body else None
        response = gateway.request(method, path, headers=headers, json=payload)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_an_analyst_reads_knowledge_health_but_no_audit_log_nor_roles(
    gateway: httpx.Client, world: Json
) -> None:
    analyst = register(gateway, "sec_analyst")
    admin = world["people"]["admin"]["headers"]
    promoted = gateway.put(
        f"/users/{analyst['user']['id']}/role", headers=admin, json={"role": "analyst"}
    )
    assert promoted.status_code == 200, promoted.text
    signed_in = gateway.post("/auth/login", json={"login": "sec_analyst", "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert signed_in.json()["user"]["role"] == "analyst"
    group = world["private_group"]
    assert gateway.get("/knowledge-health/tags", headers=headers).status_code == 200
    assert gateway.get(f"/knowledge-health/groups/{group}", headers=headers).status_code == 200
    # Figures only: the private group's content stays hidden.
    assert (
        gateway.get(f"/questions/{world['private_question']}", headers=headers).status_code == 404
    )
    assert gateway.get("/audit", headers=headers).status_code == 403
    owner_id = world["people"]["owner"]["user"]["id"]
    refused = gateway.put(f"/users/{owner_id}/role", headers=headers, json={"role": "admin"})
    assert refused.status_code == 403


def qa_cases(world: Json) -> list[Case]:
    """Questions, answers and comments: a private group's thread is hidden like its posts."""
    group = world["private_group"]
    pq, pans, pc = world["private_question"], world["private_answer"], world["private_comment"]
    uq, uans = world["public_question"], world["public_answer"]
    hidden = expect(200, 200, 404, 404)
    return [
        Case("GET", f"/questions/{pq}", hidden),
        Case("GET", f"/questions/{pq}/answers", hidden),
        Case("GET", f"/questions/{pq}/revisions", hidden),
        Case("GET", f"/questions/{pq}/revisions/1", hidden),
        Case("GET", f"/answers/{pans}", hidden),
        Case("GET", f"/answers/{pans}/revisions", hidden),
        Case("PATCH", f"/questions/{pq}", expect(0, 403, 404, 404), body={"title": "defaced"}),
        Case("DELETE", f"/questions/{pq}", expect(0, 403, 404, 404)),
        Case("PUT", f"/questions/{pq}/vote", expect(403, 200, 404, 404), body={"value": 1}),
        Case(
            "PUT",
            f"/questions/{pq}/accepted-answer",
            expect(0, 403, 404, 404),
            body={"answer_id": pans},
        ),
        Case("POST", f"/questions/{pq}/close", expect(0, 403, 404, 404), body={"duplicate_of": uq}),
        Case("POST", f"/questions/{pq}/answers", expect(0, 0, 404, 404), body={"body": "in"}),
        Case("POST", f"/questions/{pq}/comments", expect(0, 0, 404, 404), body={"body": "in"}),
        Case("POST", f"/answers/{pans}/comments", expect(0, 0, 404, 404), body={"body": "in"}),
        Case("PUT", f"/answers/{pans}/vote", expect(0, 403, 404, 404), body={"value": 1}),
        Case("PATCH", f"/answers/{pans}", expect(0, 0, 404, 404), body={"body": "defaced"}),
        Case("DELETE", f"/answers/{pans}", expect(0, 0, 404, 404)),
        Case("PATCH", f"/comments/{pc}", expect(403, 0, 404, 404), body={"body": "defaced"}),
        Case("DELETE", f"/comments/{pc}", expect(403, 0, 404, 404)),
        Case("POST", f"/questions/{pq}/formalize", expect(0, 0, 404, 404), body={"title": "mine"}),
        Case(
            "POST",
            "/questions",
            expect(0, 0, 404, 404),
            body={"title": "t", "body": "b", "group_id": group},
        ),
        # A public thread: someone else's question or answer is theirs (and owners', admins').
        Case("PATCH", f"/questions/{uq}", expect(0, 403, 403, 0), body={"title": "defaced"}),
        Case("DELETE", f"/questions/{uq}", expect(0, 403, 403, 0)),
        Case(
            "PUT",
            f"/questions/{uq}/accepted-answer",
            expect(0, 403, 403, 0),
            body={"answer_id": uans},
        ),
        Case("PATCH", f"/answers/{uans}", expect(403, 0, 403, 0), body={"body": "defaced"}),
        Case("DELETE", f"/answers/{uans}", expect(403, 0, 403, 0)),
        Case("PUT", f"/answers/{uans}/vote", expect(0, 403, 0, 0), body={"value": 1}),
        # Knowledge health: the group's owners and administrators.
        Case("GET", f"/knowledge-health/groups/{group}", expect(200, 403, 404, 200)),
        Case("GET", "/knowledge-health/tags", expect(403, 403, 403, 200)),
    ]


def test_every_id_taking_operation_answers_each_actor_as_its_policy_says(
    gateway: httpx.Client, world: Json
) -> None:
    wrong: list[str] = []
    for case in cases(world):
        # 0 = this actor is not tried (the owner's own writes would change the world).
        for actor in (a for a in ACTORS if case.expected[a]):
            response = gateway.request(
                case.method,
                case.path,
                headers=world["people"][actor]["headers"],
                json=case.body,
                params=case.params,
            )
            if response.status_code != case.expected[actor]:
                wrong.append(
                    f"{case.method} {case.path} as {actor}: {response.status_code}, "
                    f"expected {case.expected[actor]}: {response.text[:160]}"
                )
            elif response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
    assert not wrong, "\n".join(wrong)


def test_refusals_change_nothing(gateway: httpx.Client, world: Json) -> None:
    owner = world["people"]["owner"]["headers"]
    post = gateway.get(f"/posts/{world['public_post']}", headers=owner).json()
    article = gateway.get(f"/articles/{world['private_article']}", headers=owner).json()
    members = every_item(gateway, f"/groups/{world['private_group']}/members", owner)
    follows = every_item(gateway, "/follows", owner)
    assert post["body"] == "open plans", post
    assert article["title"] == "Vault wiki", article
    assert {m["user_id"] for m in members} == {
        world["people"]["owner"]["user"]["id"],
        world["people"]["member"]["user"]["id"],
    }
    assert [f["id"] for f in follows] == [world["follow"]]
    group = gateway.get(f"/groups/{world['private_group']}", headers=owner).json()
    assert group["name"] == "Vault" and group["owner_id"] == world["people"]["owner"]["user"]["id"]
    assert {m["role"] for m in members} == {"owner", "member"}
    roles = {
        actor: gateway.get("/users/me", headers=world["people"][actor]["headers"]).json()["role"]
        for actor in ("owner", "member", "outsider")
    }
    assert roles == {"owner": "member", "member": "member", "outsider": "member"}


def test_listings_never_show_a_private_group_to_outsiders_or_admins(
    gateway: httpx.Client, world: Json
) -> None:
    for actor in ("outsider", "admin"):
        headers = world["people"][actor]["headers"]
        for path in ("/posts", "/articles", "/questions"):
            listed = gateway.get(path, headers=headers, params={"group_id": world["private_group"]})
            assert listed.status_code in (200, 404), listed.text
            if listed.status_code == 200:
                assert listed.json()["items"] == [], (actor, path, listed.text)
        groups = every_item(gateway, "/groups", headers)
        assert world["private_group"] not in {g["id"] for g in groups}, actor


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/auth/oidc/providers", 200),
        # No provider is configured on this platform: an unknown one is 404, not 401.
        ("/auth/oidc/unknown/login", 404),
        ("/auth/oidc/unknown/callback", 404),
    ],
)
def test_single_sign_on_is_public_and_a_token_changes_nothing(
    gateway: httpx.Client, world: Json, path: str, expected: int
) -> None:
    """How people without a token get one: no token, a bad token or someone's token alike."""
    someone = world["people"]["owner"]["headers"]
    answers = [
        gateway.get(path, headers=headers, follow_redirects=False).status_code
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, someone)
    ]
    assert answers == [expected] * 3


def test_the_sso_code_exchange_is_public_and_only_a_code_opens_it(
    gateway: httpx.Client, world: Json
) -> None:
    """The hand-off code is the credential: a token (anyone's, of any kind) is no code and
    gets no one's tokens, with or without an Authorization header."""
    owner = world["people"]["owner"]
    # An access token is longer than any code (the schema's bound): 422, not a lookup.
    attempts = [("made-up", 400), (owner["refresh_token"], 400), (owner["access_token"], 422)]
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, owner["headers"]):
        for code, expected in attempts:
            response = gateway.post("/auth/oidc/exchange", json={"code": code}, headers=headers)
            assert response.status_code == expected, (headers, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")


def test_scim_takes_a_provisioning_token_only(gateway: httpx.Client, world: Json) -> None:
    """/scim/v2 refuses every user's token (admins' too), no token and a bad one: SCIM 401."""
    base = str(gateway.base_url).removesuffix("/api/v1/").removesuffix("/api/v1") + "/scim/v2"
    client_headers = {"Authorization": f"Bearer {world['scim_client']['token']}"}
    owner_id = world["people"]["owner"]["user"]["id"]
    assert httpx.get(f"{base}/Users/{owner_id}", headers=client_headers).status_code == 200
    attempts = [world["people"][actor]["headers"] for actor in ACTORS]
    attempts += [{}, {"Authorization": "Bearer kfscim_forged"}, {"Authorization": "Basic eDp5"}]
    for headers in attempts:
        for method, path in (("GET", f"/Users/{owner_id}"), ("DELETE", f"/Users/{owner_id}")):
            response = httpx.request(method, base + path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"].startswith("application/scim+json")
    assert httpx.get(f"{base}/Users/{owner_id}", headers=client_headers).json()["active"]


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_admin_account_operations_refuse_no_token_and_a_bad_token(
    gateway: httpx.Client, world: Json, action: str
) -> None:
    path = f"/users/{world['people']['owner']['user']['id']}/{action}"
    for headers in ({}, {"Authorization": "Bearer not.a.token"}):
        response = gateway.post(path, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


def test_session_endpoints_act_only_on_the_callers_own_session(
    gateway: httpx.Client, world: Json
) -> None:
    """Logout and password change take no id: they act on the token's own session and
    account; refresh and reset take their own secret, so another's token gets nothing."""
    people = world["people"]
    bad = {"Authorization": "Bearer not-a-token"}
    change = {"current_password": PASSWORD, "new_password": "another long passphrase"}
    for path, body in (("/auth/logout", None), ("/auth/password", change)):
        assert gateway.post(path, json=body).status_code == 401, path
        assert gateway.post(path, json=body, headers=bad).status_code == 401, path
    # Someone else's password does not change one's own (nor theirs).
    as_member = {"current_password": ADMIN_PASSWORD, "new_password": "another long passphrase"}
    refused = gateway.post("/auth/password", json=as_member, headers=people["member"]["headers"])
    assert refused.status_code == 403, refused.text
    # An access token is not a refresh token; a made-up reset link sets nothing.
    for token in (people["owner"]["access_token"], "made-up"):
        refreshed = gateway.post("/auth/refresh", json={"refresh_token": token})
        assert refreshed.status_code == 401, refreshed.text
    confirm = {"token": "made-up", "new_password": "another long passphrase"}
    assert gateway.post("/auth/password-reset/confirm", json=confirm).status_code == 400
    # The outsider ending a session of their own leaves the owner's untouched.
    second = gateway.post("/auth/login", json={"login": "sec_outsider", "password": PASSWORD})
    assert second.status_code == 200, second.text
    token = second.json()["access_token"]
    ended = gateway.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert ended.status_code == 204, ended.text
    assert ended.headers.get("content-type") is None or not ended.content
    owner = gateway.post("/auth/refresh", json={"refresh_token": people["owner"]["refresh_token"]})
    assert owner.status_code == 200, owner.text
    for actor in ACTORS:
        me = gateway.get("/users/me", headers=people[actor]["headers"])
        assert me.status_code == 200, (actor, me.text)


def test_feed_tags_and_a_persons_topics_never_show_a_private_group_to_outsiders_or_admins(
    gateway: httpx.Client, world: Json
) -> None:
    """The home feed, tag autocomplete and the person page read projections: a private
    group's items, tags and evidence reach its members only (admins are not members)."""
    people, group = world["people"], world["private_group"]
    owner, member = people["owner"]["headers"], people["member"]["headers"]
    member_id = people["member"]["user"]["id"]
    for actor in ("member", "outsider", "admin"):
        followed = gateway.post(
            "/follows",
            headers=people[actor]["headers"],
            json={"target_type": "user", "target": people["owner"]["user"]["id"]},
        )
        assert followed.status_code == 201, followed.text
    secret = gateway.post(
        "/posts",
        headers=owner,
        json={"body": "vault roster #vaultroster", "group_id": group},
    ).json()
    asked = gateway.post(
        "/questions",
        headers=owner,
        json={"title": "Vault hinges?", "body": "oil", "group_id": group, "tags": ["vaulthinge"]},
    ).json()
    answered = gateway.post(
        f"/questions/{asked['id']}/answers", headers=member, json={"body": "grease them"}
    )
    assert answered.status_code == 201, answered.text
    open_q = gateway.post(
        "/questions", headers=owner, json={"title": "Doors?", "body": "hinges", "tags": ["doors"]}
    ).json()
    assert (
        gateway.post(
            f"/questions/{open_q['id']}/answers", headers=member, json={"body": "lift them"}
        ).status_code
        == 201
    )

    def feed_ids(headers: dict[str, str]) -> list[str]:
        response = gateway.get("/feed", headers=headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    def tag_names(headers: dict[str, str]) -> list[str]:
        response = gateway.get("/tags", headers=headers, params={"prefix": "#Vault"})
        assert response.status_code == 200, response.text
        return [item["tag"] for item in response.json()["items"]]

    def topics(headers: dict[str, str]) -> list[str]:
        response = gateway.get(f"/experts/{member_id}", headers=headers)
        assert response.status_code == 200, response.text
        return [topic["tag"] for topic in response.json()["topics"]]

    # The member sees it all once the projections caught up; so the others had the chance.
    wait_for(lambda: secret["id"] in feed_ids(member), timeout=30)
    wait_for(lambda: {"vaultroster", "vaulthinge"} <= set(tag_names(member)), timeout=30)
    wait_for(lambda: {"vaulthinge", "doors"} <= set(topics(owner)), timeout=30)
    for actor in ("outsider", "admin"):
        headers = people[actor]["headers"]
        wait_for(partial(lambda h: "doors" in topics(h), headers), timeout=30)
        assert secret["id"] not in feed_ids(headers), actor
        assert tag_names(headers) == [], actor
        assert "vaulthinge" not in topics(headers), actor
    for path in ("/feed", "/tags", f"/experts/{member_id}"):
        for headers in ({}, {"Authorization": "Bearer not.a.token"}):
            response = gateway.get(path, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert gateway.get(f"/experts/{uuid4()}", headers=owner).status_code == 404
