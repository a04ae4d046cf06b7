"""Reading the `.eml` files the file transport wrote (for `knowflow-admin mail` and the outbox page)."""

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

# A stored message's id is its file name without `.eml`; nothing else is ever opened.
STORED_ID = re.compile(r"^[0-9a-fA-F-]{36}_at_knowflow$")


@dataclass(frozen=True)
class StoredMail:
    id: str
    date: str
    to: str
    subject: str
    headers: list[tuple[str, str]]
    text: str
    html: str


def _read(path: Path) -> StoredMail:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return StoredMail(
        id=path.stem,
        date=str(message["Date"] or ""),
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        headers=[(name, str(value)) for name, value in message.items()],
        text=text.get_content() if text is not None else "",
        html=html.get_content() if html is not None else "",
    )


def _sort_key(mail: StoredMail) -> float:
    try:
        return parsedate_to_datetime(mail.date).timestamp()
    except (TypeError, ValueError):
        return 0.0


def list_stored(directory: Path) -> list[StoredMail]:
    """Every stored e-mail, newest first."""
    if not directory.is_dir():
        return []
    mails = [_read(path) for path in directory.glob("*.eml") if STORED_ID.match(path.stem)]
    return sorted(mails, key=_sort_key, reverse=True)


def read_stored(directory: Path, mail_id: str) -> StoredMail | None:
    """One stored e-mail by id, or None (an id that is not ours is never a path)."""
    if not STORED_ID.match(mail_id):
        return None
    path = directory / f"{mail_id}.eml"
    return _read(path) if path.is_file() else None
