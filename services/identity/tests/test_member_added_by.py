"""`GroupMemberAdded` says who added the person, so a notifier tells only those added by others."""

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.tests.test_routes import bearer, client, register  # noqa: F401
from shared.events.contracts import GroupMemberAdded
from shared.events.outbox import OutboxMessage


def member_added_events(running: TestClient) -> list[dict[str, Any]]:
    with Session(running.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
        payloads = [json.loads(row.payload) for row in rows]
    return [p["data"] for p in payloads if p["type"] == GroupMemberAdded.event_type]


def test_the_owner_added_at_creation_and_a_joiner_add_themselves_and_an_owner_adds_others(
    client: TestClient,  # noqa: F811
) -> None:
    ada, ben, cy = register(client, "ada"), register(client, "ben"), register(client, "cy")
    group = client.post("/groups", headers=bearer(ada), json={"name": "Ops", "slug": "ops"}).json()
    for joiner, by in ((ben, ben), (cy, ada)):
        response = client.post(
            f"/groups/{group['id']}/members",
            headers=bearer(by),
            json={"user_id": joiner["user"]["id"]},
        )
        assert response.status_code == 201, response.text

    added = [(event["user_id"], event["added_by"]) for event in member_added_events(client)]
    ada_id, ben_id, cy_id = (account["user"]["id"] for account in (ada, ben, cy))
    assert added == [(ada_id, ada_id), (ben_id, ben_id), (cy_id, ada_id)]
