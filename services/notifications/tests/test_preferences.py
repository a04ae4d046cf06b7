"""Preferences: defaults, partial changes, validation, and their effect on what is told."""

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from services.notifications.models import MailDelivery
from services.notifications.tests.factories import content, inbox, person
from shared.events.contracts import NotificationPreferencesUpdated
from shared.events.outbox import OutboxMessage

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def mails(client: TestClient) -> list[MailDelivery]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return list(session.exec(select(MailDelivery)).all())


def schedule_events(client: TestClient) -> list[dict[str, Any]]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        payloads = [json.loads(row.payload) for row in session.exec(select(OutboxMessage))]
    kind = NotificationPreferencesUpdated.event_type
    return [payload["data"] for payload in payloads if payload["type"] == kind]


def test_defaults_are_filled_in_and_a_partial_change_keeps_the_rest(
    client: TestClient, auth_header: AuthHeader
) -> None:
    headers = auth_header()
    defaults = client.get("/notifications/preferences", headers=headers).json()
    assert defaults["channels"]["mention"] == "email"
    assert defaults["channels"]["routed"] == "email"
    assert defaults["channels"]["answer"] == "inbox"
    assert defaults["digest"] == {"frequency": "weekly", "hour": 9, "timezone": "UTC"}
    assert defaults["quiet_hours"] is None

    changed = client.patch(
        "/notifications/preferences",
        headers=headers,
        json={"channels": {"answer": "off"}, "quiet_hours": {"start": "22:00", "end": "07:00"}},
    ).json()
    assert changed["channels"]["answer"] == "off" and changed["channels"]["mention"] == "email"
    assert changed["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert changed["version"] == 1
    assert schedule_events(client) == []  # the digest schedule did not change

    again = client.patch(
        "/notifications/preferences",
        headers=headers,
        json={"digest": {"frequency": "daily", "timezone": "Europe/Berlin"}, "quiet_hours": None},
    ).json()
    assert again["digest"] == {"frequency": "daily", "hour": 9, "timezone": "Europe/Berlin"}
    assert again["quiet_hours"] is None and again["channels"]["answer"] == "off"
    [event] = schedule_events(client)
    assert (event["digest_frequency"], event["timezone"], event["version"]) == (
        "daily",
        "Europe/Berlin",
        2,
    )


def test_bad_preferences_are_422_problems_and_change_nothing(
    client: TestClient, auth_header: AuthHeader
) -> None:
    headers = auth_header()
    for body in (
        {"channels": {"gossip": "inbox"}},
        {"channels": {"mention": "pigeon"}},
        {"digest": {"timezone": "Mars/Olympus"}},
        {"digest": {"hour": 24}},
        {"digest": {"frequency": "hourly"}},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"quiet_hours": {"start": "22:00"}},
        {"colour": "blue"},
    ):
        response = client.patch("/notifications/preferences", headers=headers, json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/notifications/preferences", headers=headers).json()["version"] == 0


def test_off_stops_a_kind_and_email_writes_one_mail_delivery(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    cy, cy_registered = person("cy")
    client.patch(
        "/notifications/preferences", headers=auth_header(cy), json={"channels": {"mention": "off"}}
    )
    post = content(author=ada, mentions=("ben", "cy"))
    publish(ada_registered, ben_registered, cy_registered, post, post)

    assert inbox(client, auth_header(cy)) == []
    [told] = inbox(client, auth_header(ben))
    [mail] = mails(client)  # mentions come by e-mail by default
    assert (str(mail.notification_id), mail.user_id, mail.status) == (told["id"], ben, "pending")
