"""Identity numbers every change of a membership, removals included, for the projections."""

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.tests.test_routes import bearer, client, register  # noqa: F401
from shared.events.outbox import OutboxMessage


def membership_events(client: TestClient, user_id: str) -> list[tuple[str, int]]:  # noqa: F811
    """(type, version) of every membership event about one user, oldest first."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    events = [json.loads(row.payload) for row in rows]
    return [
        (event["type"].split(".")[2], event["data"]["version"])
        for event in events
        if event["type"].startswith("knowflow.group.member_")
        and event["data"]["user_id"] == user_id
    ]


def read_group(client: TestClient, group_id: str, account: dict[str, Any]) -> Any:  # noqa: F811
    return client.get(f"/groups/{group_id}", headers=bearer(account))


def test_joins_and_removals_are_numbered_and_the_number_survives_removal(
    client: TestClient,  # noqa: F811
) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    group = client.post(
        "/groups", headers=bearer(ada), json={"name": "Open", "slug": "open"}
    ).json()
    members = f"/groups/{group['id']}/members"
    bob_id = bob["user"]["id"]
    assert read_group(client, group["id"], bob).json()["membership_version"] == 0

    for _ in range(2):
        assert (
            client.post(members, headers=bearer(bob), json={"user_id": bob_id}).status_code == 201
        )
        assert client.delete(f"{members}/{bob_id}", headers=bearer(ada)).status_code == 204

    assert membership_events(client, bob_id) == [
        ("member_added", 1),
        ("member_removed", 2),
        ("member_added", 3),
        ("member_removed", 4),
    ]
    answer = read_group(client, group["id"], bob).json()
    assert (answer["is_member"], answer["membership_version"]) == (False, 4)
    assert client.post(members, headers=bearer(bob), json={"user_id": bob_id}).status_code == 201
    answer = read_group(client, group["id"], bob).json()
    assert (answer["is_member"], answer["membership_version"]) == (True, 5)
    # The owner's own membership is numbered from the group's creation.
    assert membership_events(client, ada["user"]["id"]) == [("member_added", 1)]
    assert read_group(client, group["id"], ada).json()["membership_version"] == 1
