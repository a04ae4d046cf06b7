"""Password reset across services: identity's event, notifications' mailer, a real SMTP
server, the link's token back to identity; on real NATS."""

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from services.identity.tests.test_routes import identity_app, register
from services.notifications.main import create_app as create_notifications
from services.notifications.tests.mail.conftest import SmtpServer, smtp_server
from shared.auth import TokenVerifier
from shared.settings import Settings
from shared.testing.fixtures import ServiceClientFactory, wait_for

__all__ = ["smtp_server"]


def notifications_app(settings: Settings, verifier: TokenVerifier) -> object:
    return create_notifications(settings, verifier)


def test_a_reset_link_arrives_by_e_mail_and_sets_the_password_once(
    service_client: ServiceClientFactory,
    smtp_server: Callable[..., SmtpServer],
    tmp_path: Path,
) -> None:
    server = smtp_server()
    with (
        service_client(identity_app, name="identity") as identity,
        service_client(
            notifications_app,
            name="notifications",
            smtp_url=f"smtp://127.0.0.1:{server.port}",
            mail_send_interval_seconds=0.2,
            public_url="https://knowflow.example",
            signing_key_file=tmp_path / "signing.key",
            webhook_secret_key_file=tmp_path / "webhook.key",
            mail_dir=tmp_path / "mail",
        ),
    ):
        ada = register(identity, "ada")
        for email in ("ada@example.org", "nobody@example.org"):
            response = identity.post("/auth/password-reset", json={"email": email})
            assert response.status_code == 202 and response.content in (b"", b"null")
        [message] = wait_for(server.messages, timeout=20)
        assert message["To"] == "ada@example.org"
        text = message.get_body(("plain",)).get_content()
        token = unquote(re.search(r"#token=(\S+)", text).group(1))  # type: ignore[union-attr]

        body = {"token": token, "new_password": "a brand new secret"}
        assert identity.post("/auth/password-reset/confirm", json=body).status_code == 204
        assert identity.post("/auth/password-reset/confirm", json=body).status_code == 400
        old = identity.post("/auth/refresh", json={"refresh_token": ada["refresh_token"]})
        assert old.status_code == 401
        login = {"login": "ada", "password": "a brand new secret"}
        assert identity.post("/auth/login", json=login).status_code == 200
        # Only the one address that has an account got an e-mail.
        assert len(server.messages()) == 1
