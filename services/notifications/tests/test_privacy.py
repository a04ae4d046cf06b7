"""Delete on request (GDPR erasure) and export, notifications' part: the person's address,
inbox, preferences and mail go; others' inbox items name a former member instead."""

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.notifications.models import MailDelivery, Notification, NotifiedUser
from services.notifications.tests.factories import content, inbox, person, private_group
from services.notifications.webhooks.models import WebhookEvent
from shared.events.contracts import UserContactUpdated, UserErasureRequested
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import wait_for

TOMBSTONE = "former-0123456789abcdef"


def reports(client: TestClient) -> list[dict[str, Any]]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    envelopes = [json.loads(row.payload) for row in rows]
    return [e["data"] for e in envelopes if e["type"] == "knowflow.user.erasure_reported.v1"]


def test_erasure_removes_address_inbox_preferences_and_mail_and_renames_the_actor(
    client: TestClient,
    publish: Callable[..., None],
    publish_events: Callable[..., None],
    auth_header: Callable[..., dict[str, str]],
) -> None:
    ada_id, ada = person("ada", "Ada Lovelace")
    bob_id, bob = person("bob")
    publish(
        ada,
        bob,
        UserContactUpdated(user_id=ada_id, email="ada@example.org", changed_at=utcnow()),
    )
    ada_headers, bob_headers = auth_header(ada_id, "ada"), auth_header(bob_id, "bob")
    assert client.patch(
        "/notifications/preferences",
        json={"channels": {"mention": "email", "reply": "off"}},
        headers=ada_headers,
    ).is_success
    bobs_post = content(author=bob_id, mentions=("ada",))
    publish(bobs_post, content(author=ada_id, kind="reply", parent_id=bobs_post.content_id))
    assert [item["kind"] for item in inbox(client, ada_headers)] == ["mention"]
    assert inbox(client, bob_headers)[0]["title"].startswith("Ada Lovelace replied")
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert session.exec(select(MailDelivery).where(MailDelivery.user_id == ada_id)).all()

    changed_before_erasure = utcnow()
    publish_events(
        UserErasureRequested(
            erasure_id=new_id(),
            user_id=ada_id,
            requested_at=utcnow(),
            handle="ada",
            display_name="Ada Lovelace",
            replacement_handle=TOMBSTONE,
            replacement_display_name="Former member",
        )
    )
    (report,) = wait_for(lambda: reports(client))
    assert report["service"] == "notifications"
    assert report["removed"] == {
        "inbox_items": 1,
        "mails": 1,
        "preferences": 1,
        "email": 1,
        "named_in_others_inbox": 1,
        "webhook_events": report["removed"]["webhook_events"],
    }
    # Her registration, contact and mention were kept for webhook replay; none are now.
    assert report["removed"]["webhook_events"] >= 3
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        stored = json.dumps(
            [
                row.model_dump(mode="json")
                for model in (NotifiedUser, Notification, MailDelivery, WebhookEvent)
                for row in session.exec(select(model)).all()
            ]
        )
    assert "Ada Lovelace" not in stored and '"ada"' not in stored and "ada@" not in stored
    # A contact event from before the erasure, arriving late, does not bring the address back.
    publish(
        UserContactUpdated(
            user_id=ada_id, email="ada@example.org", changed_at=changed_before_erasure
        )
    )
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        projected = session.get(NotifiedUser, ada_id)
        assert projected is not None and projected.email is None
    assert inbox(client, ada_headers) == []
    channels = client.get("/notifications/preferences", headers=ada_headers).json()["channels"]
    assert channels["reply"] == "inbox"  # the defaults: her choices are gone
    (bobs,) = inbox(client, bob_headers)
    assert bobs["title"].startswith("Former member replied")
    assert "Ada" not in json.dumps(bobs)


def test_export_holds_the_callers_address_preferences_and_visible_inbox_only(
    client: TestClient,
    publish: Callable[..., None],
    auth_header: Callable[..., dict[str, str]],
) -> None:
    ada_id, ada = person("ada")
    bob_id, bob = person("bob")
    carol_id, carol = person("carol")
    group_id, group_events = private_group(carol_id, bob_id, name="Carol's circle")
    publish(
        ada,
        bob,
        carol,
        *group_events,
        UserContactUpdated(user_id=ada_id, email="ada@example.org", changed_at=utcnow()),
        UserContactUpdated(user_id=bob_id, email="bob@example.org", changed_at=utcnow()),
        content(author=bob_id, mentions=("ada",)),
        content(author=carol_id, group_id=group_id, mentions=("bob", "ada")),
    )
    response = client.get("/export/me", headers=auth_header(ada_id, "ada"))
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["email"] == "ada@example.org"
    assert set(export["preferences"]) >= {"channels", "digest"}
    assert [item["kind"] for item in export["inbox"]] == ["mention"]
    text = json.dumps(export)
    assert "bob@example.org" not in text and str(group_id) not in text
    assert client.get("/export/me").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.get("/export/me", headers=bad).status_code == 401
