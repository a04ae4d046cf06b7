"""The e-mail slice's own tables: digest items already e-mailed, and e-mails about an account."""

from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from shared.ids import utcnow


class MailedDigestItem(SQLModel, table=True):
    """An item a digest e-mail carried to a person; a later digest e-mail leaves it out."""

    __tablename__ = "notifications_mailed_digest_item"

    user_id: UUID = Field(primary_key=True)
    content_id: UUID = Field(primary_key=True)
    notification_id: UUID  # the digest e-mail that carried it
    sent_at: datetime = Field(default_factory=utcnow)


class AccountMail(SQLModel, table=True):
    """An e-mail about the account itself (a password reset link), sent like every other.

    Its `MailDelivery` has the same id and `kind`; no inbox entry tells of it, no preference
    or quiet hours hold it back. `token` is the link's secret: kept only until the e-mail
    was sent or given up, then blanked.
    """

    __tablename__ = "notifications_account_mail"

    id: UUID = Field(primary_key=True)
    user_id: UUID = Field(index=True)
    kind: str  # "password_reset"
    email: str
    token: str
    expires_at: datetime
    source_event_id: UUID = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow)


MAIL_TABLES: list[type[SQLModel]] = [MailedDigestItem, AccountMail]
