"""E-mails about a person's account: the password reset link identity asks for.

They go through the same sender as every other e-mail (a `MailDelivery` claimed with a
lease, sent once, retried with back-off), but tell of no inbox item, so no preference,
visibility check or quiet hours applies: the person is waiting for the link. The link's
token is kept only until the e-mail is sent or given up.
"""

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote
from uuid import UUID

from sqlalchemy import update
from sqlmodel import Session, col

from services.notifications.mail.models import AccountMail
from services.notifications.mail.rendering import absolute, environment, message_id_for
from services.notifications.models import MailDelivery
from shared.events.contracts import PasswordResetRequested
from shared.ids import new_id
from shared.settings import Settings

PASSWORD_RESET = "password_reset"
ACCOUNT_KINDS = frozenset({PASSWORD_RESET})
# Where the link leads: the page that asks for the new password and posts it, with the
# token, to /api/v1/auth/password-reset/confirm. In the fragment, so it reaches no server log.
RESET_PATH = "/reset-password"


def do_queue_password_reset(
    *, session: Session, data: PasswordResetRequested, event_id: UUID, now: datetime
) -> None:
    """Queue the reset e-mail (the consumer runner makes a redelivered event a no-op)."""
    mail_id = new_id()
    session.add(
        AccountMail(
            id=mail_id,
            user_id=data.user_id,
            kind=PASSWORD_RESET,
            email=data.email,
            token=data.token,
            expires_at=data.expires_at,
            source_event_id=event_id,
            created_at=now,
        )
    )
    session.add(
        MailDelivery(
            notification_id=mail_id,
            user_id=data.user_id,
            kind=PASSWORD_RESET,
            not_before=now,
            created_at=now,
        )
    )


def reset_url(settings: Settings, token: str) -> str:
    return absolute(settings, f"{RESET_PATH}#token={quote(token, safe='')}")


def build_account_message(
    session: Session, settings: Settings, delivery: MailDelivery, now: datetime
) -> tuple[EmailMessage | None, str | None]:
    """The e-mail for a claimed account delivery, or None and why it is not sent."""
    mail = session.get(AccountMail, delivery.notification_id)
    if mail is None or not mail.token:
        return None, "the account e-mail is gone"
    if mail.expires_at <= now:
        return None, "the link expired before it could be sent"
    minutes = max(1, round((mail.expires_at - now).total_seconds() / 60))
    context = {"reset_url": reset_url(settings, mail.token), "minutes": minutes}
    env = environment()
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.email
    message["Subject"] = "Reset your Knowflow password"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(mail.id)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(env.get_template("password_reset.txt").render(context))
    message.add_alternative(env.get_template("password_reset.html").render(context), subtype="html")
    return message, None


def forget_secret(session: Session, mail_id: UUID) -> None:
    """Blank the link's token once its e-mail is sent or given up."""
    session.execute(update(AccountMail).where(col(AccountMail.id) == mail_id).values(token=""))
