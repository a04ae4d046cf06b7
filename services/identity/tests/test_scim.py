"""SCIM 2.0 provisioning: client tokens, Users and Groups, filters, PATCH, errors, events."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.audit import AuditEntry
from services.identity.tests.test_routes import bearer, identity_app, outbox_types, register
from shared.events.outbox import OutboxMessage
from shared.testing.fixtures import ServiceClientFactory

SCIM = "/scim/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
Json = dict[str, Any]


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    # The first account is the admin, as under `make run`: these tests are not about that rule.
    with service_client(identity_app, name="identity", first_user_is_admin=True) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> Json:
    return register(client, "root")


@pytest.fixture
def scim(client: TestClient, admin: Json) -> dict[str, str]:
    """Headers with a fresh provisioning client's token."""
    response = client.post("/scim-clients", headers=bearer(admin), json={"name": "hr"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def create_user(client: TestClient, scim: dict[str, str], user_name: str, **extra: Any) -> Json:
    body = {"schemas": [USER_SCHEMA], "userName": user_name, **extra}
    response = client.post(f"{SCIM}/Users", headers=scim, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    created: Json = response.json()
    return created


def patch(op: str, path: str | None, value: Any) -> Json:
    operation: Json = {"op": op, "value": value}
    if path is not None:
        operation["path"] = path
    return {"schemas": [PATCH_SCHEMA], "Operations": [operation]}


def assert_scim_error(response: Any, status: int) -> Json:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body: Json = response.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status)
    return body


def test_only_admins_create_clients_and_the_token_is_shown_once(
    client: TestClient, admin: Json
) -> None:
    member = register(client, "mia")
    refused = client.post("/scim-clients", headers=bearer(member), json={"name": "x"})
    assert refused.status_code == 403
    created = client.post("/scim-clients", headers=bearer(admin), json={"name": "okta"}).json()
    assert created["token"].startswith("kfscim_")
    listed = client.get("/scim-clients", headers=bearer(admin)).json()["items"]
    assert [item["name"] for item in listed] == ["okta"] and "token" not in listed[0]


def test_scim_refuses_no_token_a_user_token_and_a_revoked_client_token(
    client: TestClient, admin: Json
) -> None:
    created = client.post("/scim-clients", headers=bearer(admin), json={"name": "hr"}).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get(f"{SCIM}/Users", headers=headers).status_code == 200
    assert_scim_error(client.get(f"{SCIM}/Users"), 401)
    assert_scim_error(client.get(f"{SCIM}/Users", headers=bearer(admin)), 401)
    assert_scim_error(
        client.get(f"{SCIM}/Users", headers={"Authorization": "Bearer kfscim_forged"}), 401
    )
    revoked = client.delete(f"/scim-clients/{created['id']}", headers=bearer(admin))
    assert revoked.status_code == 204
    assert_scim_error(client.get(f"{SCIM}/Users", headers=headers), 401)
    # A client token is no user token either.
    assert client.get("/users/me", headers=headers).status_code == 401


def test_create_read_and_filter_users(client: TestClient, scim: dict[str, str]) -> None:
    ada = create_user(
        client,
        scim,
        "ada@example.org",
        externalId="hr-1",
        displayName="Ada Lovelace",
        emails=[{"value": "ada@example.org", "primary": True}],
    )
    create_user(client, scim, "grace@example.org", externalId="hr-2", displayName="Grace")
    assert ada["userName"] == "ada@example.org" and ada["active"] is True
    assert ada["meta"]["location"].endswith(f"/scim/v2/Users/{ada['id']}")
    read = client.get(f"{SCIM}/Users/{ada['id']}", headers=scim).json()
    assert read["emails"] == [{"value": "ada@example.org"}]

    def found(filter_text: str) -> list[str]:
        response = client.get(f"{SCIM}/Users", headers=scim, params={"filter": filter_text})
        assert response.status_code == 200, response.text
        return [item["userName"] for item in response.json()["Resources"]]

    assert found('userName eq "ADA@example.org"') == ["ada@example.org"]
    assert found('externalId eq "hr-2"') == ["grace@example.org"]
    assert found('displayName eq "ada lovelace"') == ["ada@example.org"]
    assert found('externalId eq "HR-2"') == []  # externalId is case-exact
    assert found('userName sw "grace"') == ["grace@example.org"]  # evaluated by scim2-models
    # The admin who registered is a user too (userName is their handle).
    assert found('userName eq "root"') == ["root"]


def test_paging_with_start_index_and_count(client: TestClient, scim: dict[str, str]) -> None:
    for number in range(4):
        create_user(client, scim, f"p{number}@example.org")
    page = client.get(f"{SCIM}/Users", headers=scim, params={"startIndex": 2, "count": 2}).json()
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [item["userName"] for item in page["Resources"]] == ["p0@example.org", "p1@example.org"]


def test_bad_input_is_a_scim_400(client: TestClient, scim: dict[str, str]) -> None:
    bad_filter = client.get(f"{SCIM}/Users", headers=scim, params={"filter": 'userName eq "x'})
    assert assert_scim_error(bad_filter, 400)["scimType"] == "invalidFilter"
    no_json = client.post(
        f"{SCIM}/Users", headers={**scim, "content-type": "application/scim+json"}, content=b"{"
    )
    assert assert_scim_error(no_json, 400)["scimType"] == "invalidSyntax"
    assert_scim_error(
        client.post(f"{SCIM}/Users", headers=scim, json={"schemas": [USER_SCHEMA]}), 400
    )
    create_user(client, scim, "taken@example.org")
    again = client.post(
        f"{SCIM}/Users",
        headers=scim,
        json={"schemas": [USER_SCHEMA], "userName": "TAKEN@example.org"},
    )
    assert assert_scim_error(again, 409)["scimType"] == "uniqueness"
    assert_scim_error(client.get(f"{SCIM}/Users/not-an-id", headers=scim), 404)
    bad_patch = client.patch(
        f"{SCIM}/Users/{create_user(client, scim, 'p@example.org')['id']}",
        headers=scim,
        json={"schemas": [PATCH_SCHEMA], "Operations": [{"op": "explode"}]},
    )
    assert_scim_error(bad_patch, 400)


def test_patch_active_false_deactivates_and_revokes_then_true_reactivates(
    client: TestClient, scim: dict[str, str]
) -> None:
    person = create_user(client, scim, "leaver@example.org")
    before = outbox_types(client).count("knowflow.auth.access_revoked.v1")
    response = client.patch(
        f"{SCIM}/Users/{person['id']}", headers=scim, json=patch("replace", "active", False)
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    types = outbox_types(client)
    assert types.count("knowflow.auth.access_revoked.v1") == before + 1
    assert "knowflow.user.deactivated.v1" in types
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage)).all()
        revoked = [
            json.loads(row.payload)
            for row in rows
            if json.loads(row.payload)["type"] == "knowflow.auth.access_revoked.v1"
        ]
        assert revoked[-1]["data"]["user_id"] == person["id"]
        entries = session.exec(
            select(AuditEntry).where(AuditEntry.action == "user.deactivated")
        ).all()
        assert [entry.actor_kind for entry in entries] == ["provisioning_client"]
    again = client.patch(
        f"{SCIM}/Users/{person['id']}", headers=scim, json=patch("replace", None, {"active": True})
    )
    assert again.json()["active"] is True
    assert "knowflow.user.reactivated.v1" in outbox_types(client)


def test_put_replaces_and_delete_deprovisions(client: TestClient, scim: dict[str, str]) -> None:
    person = create_user(
        client,
        scim,
        "old@example.org",
        displayName="Old",
        externalId="hr-9",
        emails=[{"value": "new@example.org"}],
    )
    replaced = client.put(
        f"{SCIM}/Users/{person['id']}",
        headers=scim,
        json={
            "schemas": [USER_SCHEMA],
            "userName": "new@example.org",
            "displayName": "New",
            "externalId": "hr-9",
            "emails": [{"value": "new@example.org"}],
        },
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["userName"] == "new@example.org"
    assert replaced.json()["displayName"] == "New"
    assert client.delete(f"{SCIM}/Users/{person['id']}", headers=scim).status_code == 204
    assert_scim_error(client.get(f"{SCIM}/Users/{person['id']}", headers=scim), 404)
    assert "knowflow.user.deactivated.v1" in outbox_types(client)
    # The same person provisioned again (a rehire) is a new account.
    again = create_user(
        client,
        scim,
        "new@example.org",
        externalId="hr-9",
        emails=[{"value": "new@example.org"}],
    )
    assert again["id"] != person["id"]


def test_group_membership_through_patch_emits_membership_events(
    client: TestClient, scim: dict[str, str]
) -> None:
    ada = create_user(client, scim, "ada@example.org")
    bob = create_user(client, scim, "bob@example.org")
    response = client.post(
        f"{SCIM}/Groups",
        headers=scim,
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Engineering",
            "externalId": "g-1",
            "members": [{"value": ada["id"]}],
        },
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert [member["value"] for member in group["members"]] == [ada["id"]]
    added = client.patch(
        f"{SCIM}/Groups/{group['id']}",
        headers=scim,
        json=patch("add", "members", [{"value": bob["id"]}]),
    )
    assert added.status_code == 200, added.text
    assert {member["value"] for member in added.json()["members"]} == {ada["id"], bob["id"]}
    removed = client.patch(
        f"{SCIM}/Groups/{group['id']}",
        headers=scim,
        json=patch("remove", f'members[value eq "{ada["id"]}"]', None),
    )
    assert removed.status_code == 200, removed.text
    assert [member["value"] for member in removed.json()["members"]] == [bob["id"]]
    types = outbox_types(client)
    assert types.count("knowflow.group.member_added.v1") == 2
    assert types.count("knowflow.group.member_removed.v1") == 1
    user_view = client.get(f"{SCIM}/Users/{bob['id']}", headers=scim).json()
    assert [item["value"] for item in user_view["groups"]] == [group["id"]]
    found = client.get(
        f"{SCIM}/Groups", headers=scim, params={"filter": 'displayName eq "engineering"'}
    )
    assert [item["id"] for item in found.json()["Resources"]] == [group["id"]]
    unknown = client.patch(
        f"{SCIM}/Groups/{group['id']}",
        headers=scim,
        json=patch("add", "members", [{"value": "00000000-0000-0000-0000-000000000000"}]),
    )
    assert_scim_error(unknown, 400)
    assert client.delete(f"{SCIM}/Groups/{group['id']}", headers=scim).status_code == 204
    assert_scim_error(client.get(f"{SCIM}/Groups/{group['id']}", headers=scim), 404)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        kinds = session.exec(
            select(AuditEntry.actor_kind).where(col(AuditEntry.action).startswith("scim."))
        ).all()
        assert kinds and set(kinds) == {"provisioning_client"}


def test_discovery_endpoints_declare_what_is_kept(client: TestClient, scim: dict[str, str]) -> None:
    config = client.get(f"{SCIM}/ServiceProviderConfig", headers=scim).json()
    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    types = client.get(f"{SCIM}/ResourceTypes", headers=scim).json()
    assert {item["id"] for item in types["Resources"]} == {"User", "Group"}
    schema = client.get(f"{SCIM}/Schemas/{USER_SCHEMA}", headers=scim).json()
    assert {item["name"] for item in schema["attributes"]} == {
        "userName",
        "displayName",
        "active",
        "emails",
        "groups",
    }
