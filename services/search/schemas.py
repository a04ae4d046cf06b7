"""Search's HTTP response models."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from shared.events.contracts import ContentKind, Visibility


class SearchItem(BaseModel):
    id: UUID
    kind: ContentKind
    title: str | None
    snippet: str = Field(
        description="HTML, the only HTML field of the API: escaped text, matches in <mark>…</mark>."
    )
    author_id: UUID
    group_id: UUID | None
    visibility: Visibility
    tags: list[str]
    created_at: datetime
    score: float = Field(description="Higher is more relevant; comparable within one query.")


class SearchResults(BaseModel):
    items: list[SearchItem]
    next_cursor: str | None = None


class EvidenceItem(BaseModel):
    content_id: UUID
    kind: ContentKind
    title: str | None
    snippet: str = Field(description="HTML-escaped text; matches wrapped in <mark>…</mark>.")
    created_at: datetime
    weight: float = Field(description="What the item adds to its author's score.")
    thanks: int = Field(description="How many people thanked the author for this item.")
    score: int = Field(0, description="The item's vote score (questions and answers).")
    accepted: bool = Field(False, description="An answer its question accepted.")
    why: str = Field("", description="The factors of the item's weight, in words.")


class ExpertItem(BaseModel):
    user_id: UUID
    handle: str | None = Field(description="Null until the person's profile has reached search.")
    display_name: str | None
    score: float
    thanks: int = Field(
        description="Thanks on all of this person's items on the topic that the caller may see."
    )
    why: str = Field("", description="Why this person: every factor of the score, in words.")
    evidence: list[EvidenceItem]


class ExpertResults(BaseModel):
    topic: str | None = None
    q: str | None = None
    tags: list[str] = Field(default_factory=list)
    experts: list[ExpertItem]


class ReindexResult(BaseModel):
    index: str = Field(description="The index the search alias now names.")
    replaced: list[str] = Field(description="Indices it replaced (deleted).")
    copied: int = Field(description="Items read from posts.")
    tombstones: int = Field(description="Deletions carried over from the old index.")
    seconds: float
