"""The sender against a real SMTP server process: what arrives, once, and what is retried."""

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.notifications.mail.sender import claim, claim_due, send_due
from services.notifications.mail.transport import SmtpConnection, SmtpTransport, transport_for
from services.notifications.mail.unsubscribe import check_token
from services.notifications.models import NotifiedMembership
from services.notifications.tests.mail.conftest import (
    Certificate,
    SmtpServer,
    add_person,
    delivery,
    notify,
)
from shared.db import make_engine
from shared.ids import new_id, utcnow
from shared.settings import Settings

SettingsFactory = Callable[..., Settings]
ServerFactory = Callable[..., SmtpServer]


def smtp_settings(
    mail_settings: SettingsFactory, server: SmtpServer, **overrides: object
) -> Settings:
    return mail_settings(smtp_url=f"smtp://127.0.0.1:{server.port}", **overrides)


def send(engine: Engine, settings: Settings, **kwargs: object) -> None:
    send_due(engine, settings, transport_for(settings), **kwargs)  # type: ignore[arg-type]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_a_mention_arrives_once_with_headers_both_parts_and_absolute_links(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server()
    settings = smtp_settings(mail_settings, server)
    ben = add_person(engine, email="ben@example.org")
    notification_id = notify(engine, ben, title="Ada mentioned you in <script>x</script>")

    send(engine, settings)
    send(engine, settings)  # a second round finds nothing to do

    [message] = server.messages()
    assert message["From"] == "Knowflow <knowflow@example.org>"
    assert message["To"] == "ben@example.org"
    assert message["Subject"] == "Ada mentioned you in <script>x</script>"
    assert message["Message-ID"] == f"<{notification_id}@knowflow>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip("<>")
    assert link.startswith("https://knowflow.example/api/v1/notifications/unsubscribe?token=")
    token = parse_qs(urlsplit(link).query)["token"][0]
    unsubscription = check_token(settings, token)
    assert (unsubscription.user_id, unsubscription.kind) == (ben, "mention")
    text, html = parts(message)
    assert "<script>" in text  # plain text is not HTML
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "https://knowflow.example/api/v1/posts/" in text
    assert 'href="https://knowflow.example/api/v1/posts/' in html
    row = delivery(engine, notification_id)
    assert (row.status, row.attempts, row.message_id) == ("sent", 1, message["Message-ID"])


def test_starttls_with_login_is_used_when_the_url_asks_for_it(
    engine: Engine,
    smtp_server: ServerFactory,
    mail_settings: SettingsFactory,
    certificate: Certificate,
) -> None:
    server = smtp_server(
        "--starttls", str(certificate.cert), str(certificate.key), "--auth", "kf:s3cret"
    )
    good = mail_settings(
        smtp_url=f"smtp://kf:s3cret@127.0.0.1:{server.port}?starttls=true",
        smtp_ca_file=certificate.cert,
    )
    bad = good.model_copy(
        update={"smtp_url": f"smtp://kf:wrong@127.0.0.1:{server.port}?starttls=true"}
    )
    first = notify(engine, add_person(engine))

    send(engine, bad)
    assert server.messages() == []
    row = delivery(engine, first)
    assert row.status == "pending"  # a refused login is worth retrying (fix the config)
    assert row.last_error == "SMTP login refused: 535"

    send(engine, good)
    assert len(server.messages()) == 1
    assert delivery(engine, first).status == "sent"


def test_implicit_tls_smtps_delivers(
    engine: Engine,
    smtp_server: ServerFactory,
    mail_settings: SettingsFactory,
    certificate: Certificate,
) -> None:
    server = smtp_server("--implicit-tls", str(certificate.cert), str(certificate.key))
    settings = mail_settings(
        smtp_url=f"smtps://127.0.0.1:{server.port}", smtp_ca_file=certificate.cert
    )
    notify(engine, add_person(engine))
    send(engine, settings)
    assert len(server.messages()) == 1


def test_two_senders_on_one_database_send_every_mail_exactly_once(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server()
    settings = smtp_settings(mail_settings, server, mail_batch_size=4)
    people = [
        add_person(engine, handle=f"p{index}", email=f"p{index}@example.org") for index in range(24)
    ]
    ids = {notify(engine, person) for person in people}
    replica_engine = make_engine(str(engine.url.render_as_string(hide_password=False)))
    errors: list[BaseException] = []

    def replica(replica_engine: Engine) -> None:
        try:
            while send_due(replica_engine, settings, transport_for(settings)).claimed:
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(each,)) for each in (engine, replica_engine)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replica_engine.dispose()

    assert errors == []
    arrived = Counter(str(message["Message-ID"]) for message in server.messages())
    assert set(arrived) == {f"<{each}@knowflow>" for each in ids}
    assert set(arrived.values()) == {1}


def test_a_sender_that_read_a_mail_before_another_claimed_it_does_not_claim_it_again(
    engine: Engine,
) -> None:
    notification_id = notify(engine, add_person(engine))
    now = utcnow()
    lease = now + timedelta(minutes=5)
    # Both replicas read the same due row; the first to update it holds it.
    assert claim(engine, [notification_id], now=now, lease_until=lease) == [notification_id]
    assert claim(engine, [notification_id], now=now, lease_until=lease) == []
    assert claim_due(engine, now=now, lease_until=lease, limit=10) == []
    row = delivery(engine, notification_id)
    assert (row.status, row.attempts) == ("sending", 1)


def test_a_refusing_server_gets_the_mail_later_and_once(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server()
    settings = smtp_settings(mail_settings, server)
    server.stop()  # connection refused
    notification_id = notify(engine, add_person(engine))

    send(engine, settings)
    row = delivery(engine, notification_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error and "Connection" in row.last_error

    server.start()
    send(engine, settings, now=utcnow() + timedelta(seconds=1))
    send(engine, settings, now=utcnow() + timedelta(seconds=2))
    assert len(server.messages()) == 1
    assert delivery(engine, notification_id).status == "sent"


def test_retries_back_off_exponentially_and_give_up_after_the_last_attempt(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server("--reject-rcpt", "451 mailbox busy, try later")
    settings = smtp_settings(mail_settings, server, mail_backoff_seconds=60.0, mail_max_attempts=3)
    notification_id = notify(engine, add_person(engine))
    now = utcnow()

    send(engine, settings, now=now)
    first = delivery(engine, notification_id)
    assert first.status == "pending" and "451" in (first.last_error or "")
    send(engine, settings, now=now + timedelta(seconds=30))  # not due yet
    assert delivery(engine, notification_id).attempts == 1
    send(engine, settings, now=now + timedelta(hours=1))
    second = delivery(engine, notification_id)
    assert second.attempts == 2
    # 60 s after the first failure, 120 s after the second: the delay doubles.
    assert second.not_before - first.not_before > timedelta(minutes=59)
    send(engine, settings, now=now + timedelta(hours=2))
    final = delivery(engine, notification_id)
    assert (final.status, final.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in (final.last_error or "")


def test_a_permanent_rejection_is_recorded_and_never_retried(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server("--reject-rcpt", "550 no such user here")
    settings = smtp_settings(mail_settings, server)
    notification_id = notify(engine, add_person(engine))

    send(engine, settings)
    send(engine, settings, now=utcnow() + timedelta(days=1))
    row = delivery(engine, notification_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error is not None and row.last_error.startswith("550")


class Crash(BaseException):
    """The process dies (not an error the sender could handle)."""


class CrashingTransport(SmtpTransport):
    """The real SMTP transport, whose process dies after `survive` messages were accepted."""

    def __init__(self, transport: SmtpTransport, survive: int) -> None:
        super().__init__(transport.config)
        self.survive = survive

    def connect(self) -> SmtpConnection:
        outer = self

        class Connection(SmtpConnection):
            def send(self, message: EmailMessage) -> None:
                if outer.survive == 0:
                    raise Crash
                super().send(message)
                outer.survive -= 1

        return Connection(self.config, self.context)


def test_a_sender_restarted_mid_batch_sends_nothing_twice(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server()
    settings = smtp_settings(mail_settings, server, mail_claim_seconds=60.0)
    ids = {notify(engine, add_person(engine, handle=f"p{index}")) for index in range(6)}
    transport = transport_for(settings)
    assert isinstance(transport, SmtpTransport)

    with pytest.raises(Crash):
        send_due(engine, settings, CrashingTransport(transport, survive=2))
    assert len(server.messages()) == 2
    # A new process: the dead one's claims hold until their lease runs out, then it goes on.
    send(engine, settings)
    assert len(server.messages()) == 2
    send(engine, settings, now=utcnow() + timedelta(seconds=61))

    arrived = Counter(str(message["Message-ID"]) for message in server.messages())
    assert set(arrived) == {f"<{each}@knowflow>" for each in ids}
    assert set(arrived.values()) == {1}


def test_a_person_removed_from_the_group_before_sending_gets_nothing(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server()
    settings = smtp_settings(mail_settings, server)
    group = new_id()
    ben = add_person(engine, groups=(group,))
    notification_id = notify(
        engine, ben, group_id=group, title="Ada mentioned you in “Private plans”"
    )
    with Session(engine) as session:
        membership = session.get(NotifiedMembership, (group, ben))
        assert membership is not None
        membership.active = False
        session.add(membership)
        session.commit()

    send(engine, settings)
    assert server.messages() == []
    row = delivery(engine, notification_id)
    assert row.status == "cancelled" and row.last_error == "may no longer see the item"


def test_a_person_without_an_address_is_recorded_failed(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    server = smtp_server()
    settings = smtp_settings(mail_settings, server)
    notification_id = notify(engine, add_person(engine, email=None))
    send(engine, settings)
    assert server.messages() == []
    row = delivery(engine, notification_id)
    assert (row.status, row.last_error) == ("failed", "no e-mail address")


def test_the_address_is_looked_up_when_sending(
    engine: Engine, smtp_server: ServerFactory, mail_settings: SettingsFactory
) -> None:
    from services.notifications.models import NotifiedUser

    server = smtp_server()
    settings = smtp_settings(mail_settings, server)
    ben = add_person(engine, email="old@example.org")
    notify(engine, ben)
    with Session(engine) as session:
        person = session.get(NotifiedUser, ben)
        assert person is not None
        person.email = "new@example.org"
        session.add(person)
        session.commit()
    send(engine, settings)
    assert [str(message["To"]) for message in server.messages()] == ["new@example.org"]
