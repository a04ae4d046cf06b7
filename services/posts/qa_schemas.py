"""The Q&A HTTP models: questions, answers, comments, votes, revisions, knowledge health."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StrictInt,
)

from services.posts.models import AnswerBase, CommentBase, QuestionBase
from services.posts.schemas import NOT_BLANK, AlwaysPresent, Strict, Tags, Title, _not_blank

QA_BODY_MAX = 30_000
COMMENT_BODY_MAX = 600
SOURCE_MAX = 200

QuestionSort = Literal["newest", "activity", "votes"]

QABody = Annotated[
    str,
    Field(min_length=1, max_length=QA_BODY_MAX, json_schema_extra=NOT_BLANK),
    AfterValidator(_not_blank),
]
CommentBody = Annotated[
    str,
    Field(min_length=1, max_length=COMMENT_BODY_MAX, json_schema_extra=NOT_BLANK),
    AfterValidator(_not_blank),
]


def _text(value: object) -> object:
    # Pydantic would read a number as a Unix time; the schema says an RFC 3339 string.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


OriginTime = Annotated[AwareDatetime, BeforeValidator(_text)]


class Origin(Strict):
    """Where an imported item comes from (administrators only): its author, time and key."""

    author_id: UUID
    author_handle: str = Field(
        default="",
        pattern=r"^([a-z0-9_]{2,32})?$",
        description="The author's handle in identity (shown with the item); empty if unknown.",
    )
    created_at: OriginTime
    source: str = Field(
        min_length=1,
        max_length=SOURCE_MAX,
        description="Unique per kind: a second create with it answers the existing item (200).",
    )


def _integral(value: object) -> object:
    """JSON Schema's integers include 5.0; strings and booleans stay refused (strict int)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


SourceScore = Annotated[StrictInt, BeforeValidator(_integral)]


class ScoredOrigin(Origin):
    score: SourceScore = Field(
        default=0,
        ge=-(2**31),
        le=2**31 - 1,
        description="Votes on the source site (anonymous), added to the score.",
    )


class QuestionCreate(Strict):
    title: Title
    body: QABody
    tags: Tags = Field(default_factory=list)
    group_id: UUID | None = None
    origin: ScoredOrigin | None = None


class QuestionUpdate(Strict):
    """Fields left out (or null) keep their value; any change makes a new revision."""

    title: Title | None = None
    body: QABody | None = None
    tags: Tags | None = None


class AnswerCreate(Strict):
    body: QABody
    origin: ScoredOrigin | None = None


class AnswerUpdate(Strict):
    body: QABody


class CommentCreate(Strict):
    body: CommentBody
    origin: Origin | None = None


class CommentUpdate(Strict):
    body: CommentBody


class VoteCreate(Strict):
    value: Literal[1, -1]


class VotePublic(BaseModel):
    score: int
    my_vote: Literal[-1, 0, 1]


class AcceptAnswer(Strict):
    answer_id: UUID
    origin: Origin | None = None


class CloseQuestion(Strict):
    duplicate_of: UUID


class CommentPublic(CommentBase, AlwaysPresent):
    """A comment as anyone who may read its question sees it."""


class QuestionSummary(QuestionBase, AlwaysPresent):
    has_accepted_answer: bool


class QuestionPublic(QuestionSummary):
    body: str
    mentions: list[str]
    comments: list[CommentPublic] = Field(description="Oldest first.")
    duplicates: list[UUID] = Field(description="Questions closed as duplicates of this one.")
    formalized_as: list[UUID] = Field(description="Articles formalized from this question.")
    my_vote: Literal[-1, 0, 1]
    updated_at: datetime


class AnswerPublic(AnswerBase, AlwaysPresent):
    is_accepted: bool
    my_vote: Literal[-1, 0, 1]
    comments: list[CommentPublic]


class QARevisionPublic(BaseModel):
    number: int
    editor_id: UUID
    title: str | None
    body: str
    tags: list[str]
    created_at: datetime


class HealthFigures(BaseModel):
    """Knowledge health of one tag or group."""

    questions: int = Field(description="Questions asked.")
    answered_share: float = Field(description="Share of questions with at least one answer.")
    median_hours_to_first_answer: float | None
    median_hours_to_acceptance: float | None
    unanswered: int
    unanswered_older: int = Field(description="Unanswered for longer than the asked hours.")
    evidence_holders: int = Field(
        description="Distinct people who answered (the bus factor of the knowledge)."
    )
    accepted_answerers: int = Field(description="Distinct authors of accepted answers.")
    at_risk: bool = Field(description="Questions go unanswered and nobody holds evidence.")


class TagHealth(HealthFigures):
    tag: str


class TagHealthPage(BaseModel):
    unanswered_after_hours: int
    items: list[TagHealth]
    at_risk: list[str] = Field(
        description="Tags with unanswered questions and no one holding evidence."
    )


class GroupHealth(HealthFigures):
    group_id: UUID
    unanswered_after_hours: int
    tags: list[TagHealth]
    at_risk_tags: list[str]
