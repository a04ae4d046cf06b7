"""Unsubscribe links, the local outbox page and CLI, and the sender loop of the running service."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from deploy.admin import cli
from services.notifications.mail.files import list_stored
from services.notifications.mail.sender import send_due
from services.notifications.mail.transport import transport_for
from services.notifications.mail.unsubscribe import unsubscribe_token
from services.notifications.main import create_app
from services.notifications.models import MailDelivery, NotificationPreference
from services.notifications.tests.mail.conftest import SmtpServer, add_person, delivery, notify
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.settings import Settings
from shared.testing.fixtures import ServiceClientFactory, wait_for


@pytest.fixture
def running(service_client: ServiceClientFactory, tmp_path: Path) -> Callable[..., Any]:
    """`with running(**settings) as client:` the notifications service with the e-mail sender."""

    def start(**overrides: object) -> Any:
        values: dict[str, object] = {
            "signing_key_file": tmp_path / "signing.key",
            "mail_dir": tmp_path / "mail",
            "public_url": "https://knowflow.example",
            "mail_send_interval_seconds": 0.1,
        }
        return service_client(create_app, name="notifications", **(values | overrides))

    return start


@pytest.fixture
def client(running: Callable[..., Any]) -> Iterator[TestClient]:
    # No SMTP URL: the file transport. Tests send themselves (`send_now`), so nothing races.
    with running(mail_sender_enabled=False) as started:
        yield started


def send_now(client: TestClient) -> None:
    settings = settings_of(client)
    send_due(engine_of(client), settings, transport_for(settings))


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def settings_of(client: TestClient) -> Settings:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return settings


def test_one_click_unsubscribe_moves_the_kind_to_the_inbox_and_stops_its_mail(
    client: TestClient,
) -> None:
    engine = engine_of(client)
    ben = add_person(engine)
    pending = notify(engine, ben)  # queued before the click ...
    token = unsubscribe_token(settings_of(client), user_id=ben, kind="mention")

    # RFC 8058: a POST with this body, no login, no cookies.
    answer = client.post(
        "/notifications/unsubscribe",
        params={"token": token},
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert "no more e-mails for mentions" in answer.text.lower()
    with Session(engine) as session:
        preference = session.get(NotificationPreference, ben)
        assert preference is not None
        assert (preference.channels, preference.version) == ({"mention": "inbox"}, 1)
        payloads = session.exec(select(OutboxMessage.payload)).all()
    assert any("knowflow.notification.preferences_updated.v1" in each for each in payloads)
    # ... is not sent, and a new mention reaches the inbox only.
    send_now(client)
    assert delivery(engine, pending).status == "cancelled"
    notify(engine, ben)
    with Session(engine) as session:
        assert len(session.exec(select(MailDelivery)).all()) == 1
    # Clicking again is still a success, and changes nothing more.
    again = client.post("/notifications/unsubscribe", params={"token": token})
    assert again.status_code == 200 and "already" in again.text


def test_unsubscribe_from_all_stops_every_kind_of_mail(client: TestClient) -> None:
    engine = engine_of(client)
    ben = add_person(engine)
    token = unsubscribe_token(settings_of(client), user_id=ben, kind="all")
    assert client.post("/notifications/unsubscribe", params={"token": token}).status_code == 200
    with Session(engine) as session:
        preference = session.get(NotificationPreference, ben)
        assert preference is not None
        assert preference.channels == {"mention": "inbox", "routed": "inbox"}


def test_following_the_link_shows_a_confirm_button_and_unsubscribes_nobody(
    client: TestClient,
) -> None:
    engine = engine_of(client)
    ben = add_person(engine)
    token = unsubscribe_token(settings_of(client), user_id=ben, kind="routed")
    page = client.get("/notifications/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and "questions routed to you" in page.text
    with Session(engine) as session:
        assert session.get(NotificationPreference, ben) is None


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_tampered_or_missing_token_is_a_400_problem(client: TestClient, method: str) -> None:
    token = unsubscribe_token(settings_of(client), user_id=new_id(), kind="mention")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (tampered, "not-a-token"):
        answer = client.request(method, "/notifications/unsubscribe", params={"token": bad})
        assert answer.status_code == 400, bad
        assert answer.headers["content-type"] == "application/problem+json"
    assert client.request(method, "/notifications/unsubscribe").status_code == 422


def test_without_smtp_mail_is_written_to_files_the_outbox_page_and_cli_list(
    client: TestClient, auth_header: Callable[..., dict[str, str]], token_issuer: Any
) -> None:
    engine = engine_of(client)
    settings = settings_of(client)
    notification_id = notify(engine, add_person(engine), title="Ada mentioned you in “<Keys>”")
    send_now(client)
    [stored] = list_stored(settings.mail_dir)
    assert stored.subject == "Ada mentioned you in “<Keys>”"
    assert stored.id == f"{notification_id}_at_knowflow"

    admin = {
        "Authorization": f"Bearer {token_issuer.issue(user_id=new_id(), handle='root', is_admin=True)}"
    }
    page = client.get("/notifications/mail/outbox", headers=admin)
    assert page.status_code == 200
    assert "Ada mentioned you in “&lt;Keys&gt;”" in page.text
    one = client.get(f"/notifications/mail/outbox/{stored.id}", headers=admin)
    assert one.status_code == 200 and "List-Unsubscribe" in one.text
    assert client.get("/notifications/mail/outbox/..%2Fsigning", headers=admin).status_code == 404
    assert client.get("/notifications/mail/outbox", headers=auth_header()).status_code == 403
    assert client.get("/notifications/mail/outbox").status_code == 401

    runner = CliRunner()
    listed = runner.invoke(cli, ["mail", "list", "--mail-dir", str(settings.mail_dir)])
    assert listed.exit_code == 0 and stored.id in listed.output
    shown = runner.invoke(cli, ["mail", "show", stored.id, "--mail-dir", str(settings.mail_dir)])
    assert shown.exit_code == 0
    assert f"Message-ID: <{notification_id}@knowflow>" in shown.output
    assert "https://knowflow.example/api/v1/posts/" in shown.output
    missing = runner.invoke(cli, ["mail", "show", "nope", "--mail-dir", str(settings.mail_dir)])
    assert missing.exit_code == 1


def test_the_outbox_page_is_absent_when_mail_goes_to_an_smtp_server(
    running: Callable[..., Any],
    smtp_server: Callable[..., SmtpServer],
    token_issuer: Any,
) -> None:
    server = smtp_server()
    with running(smtp_url=f"smtp://127.0.0.1:{server.port}") as client:
        admin = {
            "Authorization": f"Bearer {token_issuer.issue(user_id=new_id(), handle='root', is_admin=True)}"
        }
        assert client.get("/notifications/mail/outbox", headers=admin).status_code == 404
        # The service's own sender loop delivers to the server.
        engine = engine_of(client)
        notification_id = notify(engine, add_person(engine))
        wait_for(lambda: delivery(engine, notification_id).status == "sent")
        [message] = server.messages()
        link = str(message["List-Unsubscribe"]).strip("<>")
        token = parse_qs(urlsplit(link).query)["token"][0]
        assert client.post("/notifications/unsubscribe", params={"token": token}).status_code == 200
