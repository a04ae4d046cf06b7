"""Digests' HTTP response models."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.digests.ranking import Reason

DigestPeriod = Literal["daily", "weekly"]


class DigestItem(BaseModel):
    content_id: UUID
    kind: str
    title: str | None = Field(description="Plain text: escape it when rendering HTML.")
    excerpt: str = Field(
        description="The body's opening, plain text (not HTML): escape it when rendering HTML."
    )
    author_id: UUID
    author_handle: str | None
    group_id: UUID | None
    tags: list[str]
    created_at: datetime
    replies: int = Field(description="Replies in its thread during the period.")
    score: float
    why: str


class DigestSection(BaseModel):
    reason: Reason
    key: str = Field(description="The followed user id, tag or group id.")
    label: str
    items: list[DigestItem]
    omitted: int = Field(description="Items that matched but fell beyond the section's cap.")


class DigestPublic(BaseModel):
    user_id: UUID
    period: DigestPeriod
    since: datetime
    until: datetime
    generated_at: datetime
    sections: list[DigestSection]
    total_items: int = Field(description="Items shown across all sections.")
    omitted_items: int = Field(description="Items left out by the per-section cap.")


class DigestRunPublic(BaseModel):
    period: DigestPeriod
    window_end: datetime | None = Field(
        description="End of the forced window (`force`); null: each person's own latest window."
    )
    sent: int = Field(description="Digests recorded for delivery now.")
    nothing_new: int = Field(description="People whose window had nothing (new): no digest.")
    already_sent: int = Field(description="People whose window had been sent already.")


FeedReasonKind = Literal["person", "tag", "group"]


class FeedReason(BaseModel):
    """One follow of the caller's that brought the item into the feed."""

    kind: FeedReasonKind
    value: str = Field(description="The followed user id, tag (without '#') or group id.")
    label: str = Field(
        description="The followed person's name and handle, the group's name, or `#tag`; "
        "plain text."
    )


class FeedItem(BaseModel):
    id: UUID
    kind: str = Field(
        description="`post`, `reply`, `article`, `question` or `answer` (an answer's "
        "`thread_root_id` is its question)."
    )
    title: str | None = Field(description="Plain text: escape it when rendering HTML.")
    excerpt: str = Field(
        description="The body's opening (up to 200 characters), plain text, not HTML."
    )
    author_id: UUID
    author_handle: str | None = Field(description="Null until the profile reached digests.")
    author_display_name: str | None
    group_id: UUID | None
    group_name: str | None
    thread_root_id: UUID = Field(description="The post or article a reply belongs to (or itself).")
    tags: list[str]
    created_at: datetime
    reasons: list[FeedReason] = Field(description="Every follow that brought it, person first.")


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
    follows_anything: bool = Field(
        description="False when the caller follows no one, no tag and no group: the feed is "
        "empty, and the page can suggest following."
    )
