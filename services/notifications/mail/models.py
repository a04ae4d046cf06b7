"""The e-mail slice's own table: which digest items a person already got by e-mail."""

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


MAIL_TABLES: list[type[SQLModel]] = [MailedDigestItem]
