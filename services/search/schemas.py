"""Search's HTTP response models."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.search.engines.base import (
    MAX_SIMILAR_BODY_CHARS,
    MAX_SIMILAR_TITLE_CHARS,
    Evidence,
)
from shared.events.contracts import ContentKind, Visibility

# As posts accepts them: letters, digits, '-' or '_', an optional leading '#'.
SimilarTag = Annotated[
    str, Field(min_length=1, max_length=51, pattern=r"^#?[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
]


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

    @classmethod
    def of(cls, item: Evidence) -> "EvidenceItem":
        return cls(
            content_id=item.content_id,
            kind=item.kind,
            title=item.title,
            snippet=item.snippet,
            created_at=item.created_at,
            weight=item.weight,
            thanks=item.thanks,
            score=item.score,
            accepted=item.accepted,
            why=item.why,
        )


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
    vectors: int = Field(
        default=0,
        description="Items whose vectors were made (missing, older, or another model's); "
        "0 without the embedding model.",
    )


class SimilarRequest(BaseModel):
    """A question as it is being written."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=MAX_SIMILAR_TITLE_CHARS)
    body: str | None = Field(default=None, max_length=MAX_SIMILAR_BODY_CHARS)
    tags: list[SimilarTag] = Field(default_factory=list, max_length=50)
    group_id: UUID | None = Field(
        default=None,
        description="The group the question will be asked in: its questions and public ones.",
    )
    limit: int = Field(default=5, ge=1, le=20)


class SimilarQuestion(BaseModel):
    question_id: UUID
    title: str | None
    snippet: str = Field(description="HTML-escaped text; matches wrapped in <mark>…</mark>.")
    score: float = Field(description="Higher is more similar; comparable within one request.")
    tags: list[str]
    group_id: UUID | None
    visibility: Visibility
    created_at: datetime
    has_accepted_answer: bool
    duplicate_of: UUID | None = Field(description="Closed as a duplicate of this question.")


class SimilarQuestions(BaseModel):
    items: list[SimilarQuestion]


class TagUse(BaseModel):
    tag: str = Field(description="Lower case, without '#'.")
    count: int = Field(description="Items carrying the tag that the caller may see.")


class TagList(BaseModel):
    items: list[TagUse] = Field(description="Most used first, then by name.")


class PersonTopic(BaseModel):
    tag: str = Field(description="The topic: a tag on the person's items or on their threads.")
    items: int = Field(
        description="The person's items the caller may see that carry the tag or sit in a "
        "thread that does."
    )
    score: float = Field(description="The person's score on the topic, as `GET /experts` ranks.")
    thanks: int = Field(description="Thanks on the person's items on the topic the caller sees.")
    why: str = Field("", description="Every factor of the score, in words.")
    evidence: list[EvidenceItem] = Field(description="The heaviest items, at most three.")


class PersonExpertise(BaseModel):
    user_id: UUID
    handle: str
    display_name: str
    topics: list[PersonTopic] = Field(description="Strongest first; empty if nothing visible.")
