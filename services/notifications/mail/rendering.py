"""E-mails from templates: a plain-text and an HTML part, headers for one-click unsubscribe.

Templates live in `templates/`; HTML ones autoescape, so text people wrote (titles,
excerpts, names) never reaches the HTML unescaped.
"""

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError

from services.notifications.mail.unsubscribe import ALL, unsubscribe_url
from services.notifications.models import Notification, NotifiedUser
from shared.events.contracts import DigestReadySection
from shared.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"

# What a person unsubscribes from, in words, per kind.
KIND_NAMES = {
    "mention": "mentions",
    "reply": "replies to your posts",
    "answer": "answers to your questions",
    "comment": "comments",
    "accepted": "accepted answers",
    "routed": "questions routed to you",
    "escalated": "escalations of your questions",
    "group_added": "group memberships",
    "role_changed": "role changes",
    "digest": "digests",
}


# Where a digest item opens, by ContentKind (replies are posts of their own).
ITEM_PATHS = {
    "post": "posts",
    "reply": "posts",
    "article": "articles",
    "question": "questions",
    "answer": "answers",
    "comment": "comments",
}


@lru_cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def message_id_for(notification_id: UUID) -> str:
    """Stable across retries and replicas: receivers can drop a repeat by it."""
    return f"<{notification_id}@knowflow>"


def absolute(settings: Settings, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return settings.public_url.rstrip("/") + "/" + path.lstrip("/")


def digest_sections(details: dict[str, Any]) -> list[DigestReadySection]:
    """The digest's sections as the inbox stored them; malformed ones are skipped."""
    sections = []
    for raw in details.get("sections") or []:
        try:
            sections.append(DigestReadySection.model_validate(raw))
        except ValidationError:
            continue
    return sections


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def render(
    settings: Settings,
    notification: Notification,
    recipient: NotifiedUser,
    *,
    sections: list[DigestReadySection] | None = None,
) -> RenderedMail:
    """Subject, text and HTML of the e-mail telling `recipient` of `notification`."""
    context: dict[str, Any] = {
        "notification": notification,
        "recipient": recipient,
        "name": recipient.display_name or recipient.handle,
        "item_url": absolute(settings, notification.url),
        "inbox_url": absolute(settings, "/api/v1/notifications"),
        "kind_name": KIND_NAMES.get(notification.kind, notification.kind),
        "unsubscribe_kind_url": unsubscribe_url(
            settings, user_id=recipient.user_id, kind=notification.kind
        ),
        "unsubscribe_all_url": unsubscribe_url(settings, user_id=recipient.user_id, kind=ALL),
    }
    if sections is not None:
        count = sum(len(section.items) for section in sections)
        period = str(notification.details.get("period") or "")
        context["sections"] = [
            {
                "label": section.label,
                "reason": section.reason,
                "items": [
                    {
                        "title": item.title or item.excerpt[:80] or "(untitled)",
                        "excerpt": item.excerpt,
                        "why": item.why,
                        "url": absolute(
                            settings, f"/api/v1/{ITEM_PATHS[item.kind]}/{item.content_id}"
                        ),
                    }
                    for item in section.items
                ],
            }
            for section in sections
        ]
        context["count"] = count
        context["period"] = period
        subject = f"Your {period + ' ' if period else ''}Knowflow digest: {count} new " + (
            "item" if count == 1 else "items"
        )
        template = "digest"
    else:
        subject = notification.title
        template = "notification"
    env = environment()
    return RenderedMail(
        subject=subject,
        text=env.get_template(f"{template}.txt").render(context),
        html=env.get_template(f"{template}.html").render(context),
    )


def build_message(
    settings: Settings,
    *,
    notification: Notification,
    recipient: NotifiedUser,
    rendered: RenderedMail,
    now: datetime,
) -> EmailMessage:
    """The MIME message: text and HTML alternatives, RFC 8058 one-click unsubscribe."""
    assert recipient.email is not None
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = recipient.email
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(notification.id)
    link = unsubscribe_url(settings, user_id=recipient.user_id, kind=notification.kind)
    message["List-Unsubscribe"] = f"<{link}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
