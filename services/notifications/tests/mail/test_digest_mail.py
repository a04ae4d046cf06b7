"""Digest e-mails: sections and why, never an item an earlier digest e-mail carried, none when empty."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from sqlmodel import Session

from services.notifications.mail.sender import send_due
from services.notifications.mail.transport import transport_for
from services.notifications.models import NotificationPreference
from services.notifications.tests.mail.conftest import SmtpServer, add_person, delivery, notify
from shared.events.contracts import DigestReadyItem, DigestReadySection
from shared.ids import new_id
from shared.settings import Settings


def digest_details(*sections: tuple[str, list[UUID]]) -> dict[str, Any]:
    """`details` as the inbox stores a `digest` notification (DigestReadySection dumped)."""
    return {
        "period": "daily",
        "sections": [
            DigestReadySection(
                reason="tag",
                label=label,
                items=[
                    DigestReadyItem(
                        content_id=content_id,
                        kind="question",
                        title=f"Question {str(content_id)[-4:]} <b>bold</b>",
                        excerpt="How do we rotate keys?",
                        why=f"tagged {label}",
                    )
                    for content_id in items
                ],
            ).model_dump(mode="json")
            for label, items in sections
        ],
    }


def wants_digest_mail(engine: Engine, user_id: UUID) -> None:
    with Session(engine) as session:
        session.add(NotificationPreference(user_id=user_id, channels={"digest": "email"}))
        session.commit()


def test_digest_mails_list_sections_and_never_repeat_an_item(
    engine: Engine,
    smtp_server: Callable[..., SmtpServer],
    mail_settings: Callable[..., Settings],
) -> None:
    server = smtp_server()
    settings = mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}")
    transport = transport_for(settings)
    ben = add_person(engine)
    wants_digest_mail(engine, ben)
    a, b, c = new_id(), new_id(), new_id()

    notify(
        engine,
        ben,
        kind="digest",
        title="Your daily digest",
        details=digest_details(("security", [a, b])),
    )
    send_due(engine, settings, transport)
    # b again (also under a second tag), and c: only c is new.
    notify(
        engine,
        ben,
        kind="digest",
        title="Your daily digest",
        details=digest_details(("security", [b]), ("keys", [c, b])),
    )
    send_due(engine, settings, transport)
    # Only what was already sent: no e-mail at all.
    third = notify(
        engine,
        ben,
        kind="digest",
        title="Your daily digest",
        details=digest_details(("security", [a, c])),
    )
    send_due(engine, settings, transport)

    first, second = server.messages()
    assert first["Subject"] == "Your daily Knowflow digest: 2 new items"
    assert second["Subject"] == "Your daily Knowflow digest: 1 new item"
    text = second.get_body(preferencelist=("plain",))
    html = second.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert str(c) in text.get_content() and str(b) not in text.get_content()
    assert "Why: tagged keys" in text.get_content()
    assert f'href="https://knowflow.example/api/v1/questions/{c}"' in html.get_content()
    assert (
        "<b>bold</b>" not in html.get_content() and "&lt;b&gt;bold&lt;/b&gt;" in html.get_content()
    )
    assert second["List-Unsubscribe"]
    row = delivery(engine, third)
    assert (row.status, row.last_error) == ("cancelled", "nothing new to send")


def test_an_empty_digest_sends_nothing(
    engine: Engine,
    smtp_server: Callable[..., SmtpServer],
    mail_settings: Callable[..., Settings],
) -> None:
    server = smtp_server()
    settings = mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}")
    ben = add_person(engine)
    wants_digest_mail(engine, ben)
    empty = notify(engine, ben, kind="digest", title="Your daily digest", details={"sections": []})
    send_due(engine, settings, transport_for(settings))
    assert server.messages() == []
    assert delivery(engine, empty).status == "cancelled"
