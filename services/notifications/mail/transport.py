"""Where e-mails go: an SMTP server from `KNOWFLOW_SMTP_URL`, or `.eml` files under `mail_dir`.

MailError
 ├── TemporaryMailError  try again later (4xx reply, refused connection, timeout)
 └── PermanentMailError  never try again (5xx reply, unusable address)
"""

import smtplib
import ssl
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from shared.keyfiles import write_atomically
from shared.settings import Settings


class MailError(Exception):
    """The message was not accepted."""


class TemporaryMailError(MailError):
    pass


class PermanentMailError(MailError):
    pass


class Connection(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand one message over; returns once it was accepted, else raises MailError."""


class Transport(Protocol):
    def connect(self) -> AbstractContextManager[Connection]:
        """A connection that sends several messages (closed when the context ends)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    timeout: float
    ca_file: Path | None = None


def parse_smtp_url(url: str, *, timeout: float, ca_file: Path | None = None) -> SmtpConfig:
    """`smtp://user:pass@host:587?starttls=true` or `smtps://host:465`; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError(f"KNOWFLOW_SMTP_URL must be smtp://host[:port] or smtps://…, not {url!r}")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[-1].lower() in {"1", "true", "yes"}
    implicit_tls = parts.scheme == "smtps"
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if implicit_tls else 25),
        implicit_tls=implicit_tls,
        starttls=starttls and not implicit_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
        ca_file=ca_file,
    )


def _classify(exc: BaseException) -> MailError:
    """A 4xx reply or a network problem is worth retrying; a 5xx reply is not."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [reply[0] for reply in exc.recipients.values()]
        code = min(codes) if codes else None
    if isinstance(code, int) and 500 <= code < 600:
        return PermanentMailError(f"{code} {_reply_text(exc)}")
    if isinstance(code, int):
        return TemporaryMailError(f"{code} {_reply_text(exc)}")
    return TemporaryMailError(f"{type(exc).__name__}: {exc}")


def _reply_text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        error: object = next(iter(exc.recipients.values()))[1]
    else:
        error = getattr(exc, "smtp_error", b"")
    return error.decode(errors="replace") if isinstance(error, bytes) else str(exc)


class SmtpConnection:
    def __init__(self, config: SmtpConfig, context: ssl.SSLContext | None) -> None:
        self.config = config
        self.context = context
        self.client: smtplib.SMTP | None = None

    def __enter__(self) -> "SmtpConnection":
        config = self.config
        context = self.context
        try:
            if config.implicit_tls:
                self.client = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=context
                )
            else:
                self.client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
                if config.starttls:
                    # Asked for STARTTLS: never fall back to plain text.
                    self.client.starttls(context=context)
            if config.username:
                self.client.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            self._close()
            raise TemporaryMailError(f"SMTP login refused: {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._close()
            raise _classify(exc) from exc
        return self

    def send(self, message: EmailMessage) -> None:
        assert self.client is not None
        try:
            self.client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise _classify(exc) from exc

    def _close(self) -> None:
        if self.client is None:
            return
        try:
            self.client.quit()
        except (smtplib.SMTPException, OSError):
            self.client.close()
        self.client = None

    def __exit__(self, *exc: object) -> None:
        self._close()


class SmtpTransport:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        # Made once: loading the system's CA store takes longer than sending a message.
        self.context = (
            ssl.create_default_context(cafile=config.ca_file)
            if config.implicit_tls or config.starttls
            else None
        )

    def connect(self) -> SmtpConnection:
        return SmtpConnection(self.config, self.context)


def eml_name(message_id: str) -> str:
    """The file a message is written to: named by its Message-ID, so a retry overwrites it."""
    return message_id.strip("<>").replace("@", "_at_").replace("/", "_") + ".eml"


class FileConnection:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __enter__(self) -> "FileConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, message: EmailMessage) -> None:
        """Write atomically: a reader sees the whole message or none."""
        target = self.directory / eml_name(str(message["Message-ID"]))
        try:
            write_atomically(target, message.as_bytes(), mode=0o644)
        except OSError as exc:
            raise TemporaryMailError(f"cannot write {target}: {exc}") from exc


class FileTransport:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def connect(self) -> FileConnection:
        return FileConnection(self.directory)


def transport_for(settings: Settings) -> SmtpTransport | FileTransport:
    """SMTP when `smtp_url` is set; otherwise files under `mail_dir` (no server needed)."""
    if not settings.smtp_url:
        return FileTransport(settings.mail_dir)
    return SmtpTransport(
        parse_smtp_url(
            settings.smtp_url, timeout=settings.smtp_timeout_seconds, ca_file=settings.smtp_ca_file
        )
    )
