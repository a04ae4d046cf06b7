"""E-mail test helpers: a real SMTP server process, a migrated database, people and notifications."""

import datetime as dt
import ipaddress
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine
from sqlmodel import Session

from services.notifications.main import SPEC
from services.notifications.models import MailDelivery, NotifiedMembership, NotifiedUser
from services.notifications.service import do_notify
from shared.db import make_engine
from shared.events.contracts import NotificationKind
from shared.ids import new_id
from shared.natsserver import free_port
from shared.settings import Settings
from shared.testing.backends import fresh_database

SERVER_SCRIPT = Path(__file__).with_name("smtp_server.py")


@dataclass
class SmtpServer:
    """One aiosmtpd process; `restart()` brings it back on the same port and folder."""

    port: int
    directory: Path
    arguments: list[str]
    process: subprocess.Popen[str] | None = None
    history: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> "SmtpServer":
        process = subprocess.Popen(
            [
                sys.executable,
                str(SERVER_SCRIPT),
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                *self.arguments,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", f"SMTP server did not start: {line!r}"
        self.process = process
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def messages(self) -> list[EmailMessage]:
        """What the server accepted, in arrival order."""
        parsed = []
        for path in sorted(self.directory.glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Callable[..., SmtpServer]]:
    """`smtp_server("--auth", "u:p")` starts a real SMTP server process on a free port."""
    servers: list[SmtpServer] = []

    def start(*arguments: str) -> SmtpServer:
        server = SmtpServer(free_port(), tmp_path / f"smtp-{len(servers)}", list(arguments))
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made for this test (the client trusts it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """The notifications database, migrated to head (SQLite, or PostgreSQL when asked)."""
    with fresh_database(tmp_path, "notifications") as url:
        engine = make_engine(url)
        SPEC.prepare_database(engine)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def mail_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the sender: quick back-off, a key and a mail folder of the test's own."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "signing_key_file": tmp_path / "signing.key",
            "mail_dir": tmp_path / "mail",
            "public_url": "https://knowflow.example",
            "mail_from": "Knowflow <knowflow@example.org>",
            "mail_backoff_seconds": 0.0,
            "smtp_timeout_seconds": 5.0,
            "log_json": False,
        }
        return Settings(**(values | overrides))

    return make


def add_person(
    engine: Engine,
    *,
    handle: str = "ben",
    email: str | None = "ben@example.org",
    groups: tuple[UUID, ...] = (),
) -> UUID:
    """A person in the people projection, optionally a member of groups."""
    user_id = new_id()
    with Session(engine) as session:
        session.add(
            NotifiedUser(user_id=user_id, handle=handle, display_name=handle.title(), email=email)
        )
        for group_id in groups:
            session.add(NotifiedMembership(group_id=group_id, user_id=user_id))
        session.commit()
    return user_id


def notify(
    engine: Engine,
    user_id: UUID,
    *,
    kind: NotificationKind = "mention",
    title: str = "Ada mentioned you in “Rotating keys”",
    group_id: UUID | None = None,
    details: dict[str, Any] | None = None,
    key: str | None = None,
) -> UUID:
    """A notification through `do_notify`, as the inbox consumers make them; its id."""
    item_id = new_id()
    with Session(engine) as session:
        notification = do_notify(
            session=session,
            user_id=user_id,
            kind=kind,
            dedupe_key=key or f"{kind}:{item_id}",
            group_key=f"{kind}:{item_id}",
            title=title,
            reason="you were mentioned",
            url=f"/api/v1/posts/{item_id}",
            item_kind="post",
            item_id=item_id,
            actor_id=new_id(),
            group_id=group_id,
            details=details,
        )
        session.commit()
        assert notification is not None
        return notification.id


def delivery(engine: Engine, notification_id: UUID) -> MailDelivery:
    with Session(engine) as session:
        row = session.get(MailDelivery, notification_id)
        assert row is not None
        return row
