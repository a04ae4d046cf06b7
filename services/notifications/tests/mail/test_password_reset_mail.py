"""Password reset e-mails: sent once through the ordinary sender, the link's secret then
forgotten; an expired link is never sent."""

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import unquote

from sqlalchemy import Engine
from sqlmodel import Session, select

from services.notifications.mail.account import do_queue_password_reset
from services.notifications.mail.models import AccountMail
from services.notifications.mail.sender import send_due
from services.notifications.mail.transport import transport_for
from services.notifications.models import MailDelivery, NotificationPreference
from services.notifications.tests.mail.conftest import SmtpServer
from shared.events.contracts import PasswordResetRequested
from shared.ids import new_id, utcnow
from shared.settings import Settings

TOKEN = "s3cr3t-reset-token/with+odd=characters"


def queue(engine: Engine, *, expires_in: timedelta = timedelta(hours=1)) -> MailDelivery:
    user_id = new_id()
    with Session(engine) as session:
        do_queue_password_reset(
            session=session,
            data=PasswordResetRequested(
                user_id=user_id,
                email="ada@example.org",
                token=TOKEN,
                expires_at=utcnow() + expires_in,
            ),
            event_id=new_id(),
            now=utcnow(),
        )
        # Quiet hours all day and e-mail turned off for everything: neither holds it back.
        session.add(
            NotificationPreference(
                user_id=user_id, quiet_start="00:00", quiet_end="23:59", channels={}
            )
        )
        session.commit()
        [delivery] = session.exec(select(MailDelivery).where(MailDelivery.user_id == user_id)).all()
        return delivery


def test_a_reset_link_is_mailed_once_and_its_secret_then_forgotten(
    engine: Engine,
    smtp_server: Callable[..., SmtpServer],
    mail_settings: Callable[..., Settings],
) -> None:
    server = smtp_server()
    settings = mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}")
    transport = transport_for(settings)
    delivery = queue(engine)
    report = send_due(engine, settings, transport)
    assert report.outcomes == {"sent": 1}
    assert send_due(engine, settings, transport).claimed == 0  # exactly once
    [message] = server.messages()
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Reset your Knowflow password"
    assert "List-Unsubscribe" not in message  # about the account: not something to opt out of
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = next(line for line in text.splitlines() if "/reset-password#token=" in line)
    assert link.startswith("https://knowflow.example/reset-password#token=")
    assert unquote(link.split("#token=", 1)[1]) == TOKEN
    with Session(engine) as session:
        stored = session.get(AccountMail, delivery.notification_id)
        sent = session.get(MailDelivery, delivery.notification_id)
    assert stored is not None and stored.token == ""
    assert sent is not None and sent.status == "sent"


def test_a_link_that_expired_before_sending_is_not_sent(
    engine: Engine,
    smtp_server: Callable[..., SmtpServer],
    mail_settings: Callable[..., Settings],
) -> None:
    server = smtp_server()
    settings = mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}")
    delivery = queue(engine, expires_in=timedelta(seconds=-1))
    assert send_due(engine, settings, transport_for(settings)).outcomes == {"cancelled": 1}
    assert server.messages() == []
    with Session(engine) as session:
        stored = session.get(AccountMail, delivery.notification_id)
    assert stored is not None and stored.token == ""


def test_a_refused_connection_retries_without_waiting_for_quiet_hours(
    engine: Engine,
    smtp_server: Callable[..., SmtpServer],
    mail_settings: Callable[..., Settings],
) -> None:
    server = smtp_server()
    server.stop()
    settings = mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}")
    delivery = queue(engine)
    assert send_due(engine, settings, transport_for(settings)).outcomes == {"retry": 1}
    with Session(engine) as session:
        pending = session.get(MailDelivery, delivery.notification_id)
        kept = session.get(AccountMail, delivery.notification_id)
    assert pending is not None and pending.status == "pending"
    assert kept is not None and kept.token == TOKEN  # still needed for the retry
    server.start()
    assert send_due(engine, settings, transport_for(settings)).outcomes == {"sent": 1}
    assert len(server.messages()) == 1
