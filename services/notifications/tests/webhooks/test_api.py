"""The admin API: who may use it, what it refuses, and what it answers."""

from collections.abc import Callable, Iterator
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from services.notifications.tests.webhooks.conftest import Notifier, register
from services.notifications.webhooks.grants import public_types
from services.notifications.webhooks.models import WebhookEndpoint
from shared.ids import new_id


@pytest.fixture
def client(notifier: Notifier) -> Iterator[TestClient]:
    with notifier() as running:
        yield running


def routes(endpoint_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    base = f"/webhooks/endpoints/{endpoint_id}"
    return [
        ("GET", "/webhooks/event-types", None),
        ("POST", "/webhooks/endpoints", {"url": "http://127.0.0.1:9/x"}),
        ("GET", "/webhooks/endpoints", None),
        ("GET", base, None),
        ("PATCH", base, {"description": "x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/replay", {"since": "2026-01-01T00:00:00Z"}),
    ]


def test_no_token_is_401_and_not_admin_is_403_everywhere(
    client: TestClient, admin: dict[str, str], auth_header: Callable[..., dict[str, str]]
) -> None:
    endpoint = register(client, admin, "http://127.0.0.1:9/x")
    for method, path, body in routes(endpoint["id"]):
        assert client.request(method, path, json=body).status_code == 401, path
        answer = client.request(method, path, json=body, headers=auth_header())
        assert answer.status_code == 403, path
        assert answer.headers["content-type"] == "application/problem+json"
    assert client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=admin).status_code == 200


def test_unknown_endpoint_is_404(client: TestClient, admin: dict[str, str]) -> None:
    for method, path, body in routes(str(new_id()))[3:]:
        assert client.request(method, path, json=body, headers=admin).status_code == 404, path


BAD_REGISTRATIONS: list[tuple[dict[str, object], int]] = [
    ({"url": "ftp://example.org/x"}, 422),
    ({"url": "https://user:pw@example.org/x"}, 422),
    ({"url": "not a url"}, 422),
    ({"url": "https://example.org/x", "event_types": ["knowflow.nothing.v1"]}, 422),
    # Restricted-only types cannot be subscribed as public, nor public-only as restricted.
    ({"url": "https://example.org/x", "event_types": ["knowflow.user.contact_updated.v1"]}, 400),
    (
        {"url": "https://example.org/x", "restricted_event_types": ["knowflow.user.registered.v1"]},
        400,
    ),
    ({"url": "https://example.org/x", "group_ids": ["not-a-uuid"]}, 422),
    ({"url": "https://example.org/x", "surprise": 1}, 422),
]


def test_bad_registrations_are_problems(client: TestClient, admin: dict[str, str]) -> None:
    for body, status in BAD_REGISTRATIONS:
        answer = client.post("/webhooks/endpoints", headers=admin, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    listed = client.get("/webhooks/endpoints", headers=admin).json()
    assert listed["items"] == []


def test_an_endpoint_defaults_to_every_public_type_and_its_secret_is_shown_once_and_sealed(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = register(client, admin, "https://hooks.example.org/knowflow", description="ERP")
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == sorted(public_types())
    assert created["restricted_event_types"] == [] and created["group_ids"] is None
    read = client.get(f"/webhooks/endpoints/{created['id']}", headers=admin).json()
    assert "secret" not in read and read["description"] == "ERP"
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        stored = session.get(WebhookEndpoint, UUID(created["id"]))
        assert stored is not None and created["secret"] not in stored.secret_encrypted
    rotated = client.post(f"/webhooks/endpoints/{created['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]


def test_event_types_list_the_contract_with_audiences(
    client: TestClient, admin: dict[str, str]
) -> None:
    listed = {
        row["type"]: row["audience"]
        for row in client.get("/webhooks/event-types", headers=admin).json()
    }
    assert listed["knowflow.user.registered.v1"] == "public"
    assert listed["knowflow.user.contact_updated.v1"] == "restricted"
    assert listed["knowflow.post.created.v1"] == "public_or_restricted"
    assert listed["knowflow.group.member_added.v1"] == "public_or_restricted"
    assert listed["knowflow.question.routed.v1"] == "restricted"


def test_endpoints_page_with_a_cursor_and_refuse_unknown_parameters(
    client: TestClient, admin: dict[str, str]
) -> None:
    made = {register(client, admin, f"https://example.org/{n}")["id"] for n in range(3)}
    first = client.get("/webhooks/endpoints", headers=admin, params={"limit": 2}).json()
    second = client.get(
        "/webhooks/endpoints", headers=admin, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert {row["id"] for row in first["items"] + second["items"]} == made
    assert second["next_cursor"] is None
    assert client.get("/webhooks/endpoints", headers=admin, params={"sort": "x"}).status_code == 422
    assert (
        client.get("/webhooks/endpoints", headers=admin, params={"cursor": "!!"}).status_code == 400
    )
    some = next(iter(made))
    path = f"/webhooks/endpoints/{some}/deliveries"
    assert client.get(path, headers=admin, params={"status": "lost"}).status_code == 422
    assert client.get(path, headers=admin, params={"statuz": "failed"}).status_code == 422
    assert client.get(path, headers=admin, params={"status": "failed"}).json()["items"] == []


def test_patch_changes_grants_and_delete_removes(client: TestClient, admin: dict[str, str]) -> None:
    created = register(client, admin, "https://example.org/x")
    path = f"/webhooks/endpoints/{created['id']}"
    group = str(new_id())
    changed = client.patch(
        path,
        headers=admin,
        json={
            "event_types": ["knowflow.post.created.v1"],
            "restricted_event_types": ["knowflow.post.created.v1"],
            "group_ids": [group],
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["event_types"] == ["knowflow.post.created.v1"] and body["group_ids"] == [group]
    refused = client.patch(path, headers=admin, json={"event_types": ["knowflow.nothing.v1"]})
    assert refused.status_code == 422
    public_only = client.patch(
        path, headers=admin, json={"restricted_event_types": ["knowflow.user.registered.v1"]}
    )
    assert public_only.status_code == 400
    assert client.patch(path, headers=admin, json={"enabled": 0}).status_code == 422
    replay = f"{path}/replay"
    assert client.post(replay, headers=admin, json={"since": 0}).status_code == 422
    assert client.patch(path, headers=admin, json={"url": "gopher://x"}).status_code == 422
    assert (
        client.post(
            f"{path}/replay", headers=admin, json={"since": "2999-01-01T00:00:00Z"}
        ).status_code
        == 400
    )
    assert client.delete(path, headers=admin).status_code == 204
    assert client.get(path, headers=admin).status_code == 404


def test_private_network_urls_are_refused_when_the_install_says_so(
    notifier: Notifier, admin: dict[str, str]
) -> None:
    with notifier(webhook_refuse_private_networks=True) as client:
        for url in (
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://[::1]/x",
        ):
            answer = client.post("/webhooks/endpoints", headers=admin, json={"url": url})
            assert answer.status_code == 400, url
