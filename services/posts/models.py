"""Posts' tables: posts and replies, articles with their revisions, questions with their answers,
comments, revisions and votes, tags, and the group projection."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy.orm import declared_attr
from sqlmodel import JSON, AutoString, Column, Field, SQLModel

from shared.events.contracts import GroupRole, GroupVisibility, Visibility
from shared.ids import new_id, utcnow
from shared.preconditions import versioned

PostKind = Literal["post", "reply"]
ReactionKind = Literal["like", "thanks"]


class PostBase(SQLModel):
    """What a post's row and its HTTP shape (`PostPublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)
    kind: PostKind = Field(sa_type=AutoString)
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    group_id: UUID | None = Field(default=None, index=True)
    visibility: Visibility = Field(sa_type=AutoString)
    body: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parent_id: UUID | None = Field(default=None, foreign_key="posts_post.id", index=True)
    thread_id: UUID = Field(index=True)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Post(PostBase, table=True):
    """A flow post or a reply; a root post's `thread_id` is its own id."""

    __tablename__ = "posts_post"

    deleted_at: datetime | None = None
    # Hidden by a moderator (or the owner) of its group, or an admin: only they still see it.
    hidden_at: datetime | None = None
    hidden_by: UUID | None = None

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        # `version` guards every UPDATE: a write based on a stale read matches no row.
        return versioned(cls)


class ArticleBase(SQLModel):
    """What an article's row and its HTTP shape (`ArticlePublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    group_id: UUID | None = Field(default=None, index=True)
    visibility: Visibility = Field(sa_type=AutoString)
    title: str
    body: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Article(ArticleBase, table=True):
    """A stock article; `version` is the number of its latest revision."""

    __tablename__ = "posts_article"

    given_tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source_thread_id: UUID | None = Field(default=None, foreign_key="posts_post.id", index=True)
    # A question thread formalized (posts_post's key cannot point at a question).
    source_question_id: UUID | None = Field(
        default=None, foreign_key="posts_question.id", index=True
    )
    # Everyone credited: the thread's authors and the formalizer ([{user_id, handle}]).
    contributors: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    deleted_at: datetime | None = None

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        # `version` guards every UPDATE: a write based on a stale read matches no row.
        return versioned(cls)


class ArticleRevision(SQLModel, table=True):
    """Every state an article has had, numbered from 1; never changed once written."""

    __tablename__ = "posts_article_revision"

    article_id: UUID = Field(foreign_key="posts_article.id", primary_key=True)
    number: int = Field(primary_key=True)
    editor_id: UUID
    title: str
    body: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ContentTag(SQLModel, table=True):
    """One tag of one post or article, so lists can filter by tag with an index."""

    __tablename__ = "posts_content_tag"

    content_id: UUID = Field(primary_key=True)
    tag: str = Field(primary_key=True, index=True)


class KnownGroup(SQLModel, table=True):
    """Identity's groups as far as posts has heard (from events or from identity itself)."""

    __tablename__ = "posts_group"

    id: UUID = Field(primary_key=True)
    visibility: GroupVisibility = Field(sa_type=AutoString)
    as_of: datetime


class KnownMembership(SQLModel, table=True):
    """Whether a user belongs to a group, per the highest version of identity's heard so far."""

    __tablename__ = "posts_membership"

    group_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
    is_member: bool = True
    role: GroupRole = Field(
        default="member", sa_type=AutoString, sa_column_kwargs={"server_default": "member"}
    )
    version: int = 0  # identity's version of the membership (0: from before versions)
    as_of: datetime


class Reaction(SQLModel, table=True):
    """One person's reaction of one kind to one post."""

    __tablename__ = "posts_reaction"

    post_id: UUID = Field(foreign_key="posts_post.id", primary_key=True)
    user_id: UUID = Field(primary_key=True)
    kind: ReactionKind = Field(primary_key=True, sa_type=AutoString)
    created_at: datetime = Field(default_factory=utcnow)


class QuestionBase(SQLModel):
    """What a question's row and its HTTP summary (`QuestionSummary`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)
    title: str
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    group_id: UUID | None = Field(default=None, index=True)
    visibility: Visibility = Field(sa_type=AutoString)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    score: int = Field(default=0, index=True)
    answer_count: int = 0
    accepted_answer_id: UUID | None = None
    duplicate_of: UUID | None = Field(default=None, foreign_key="posts_question.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    last_activity_at: datetime = Field(default_factory=utcnow, index=True)
    version: int = 1


class Question(QuestionBase, table=True):
    """A question; `version` grows with every change of it (edit, acceptance, close, delete).

    `score`, `answer_count` and `last_activity_at` are kept by atomic UPDATEs (votes and
    answers are not changes of the question), so they never bump `version`.
    """

    __tablename__ = "posts_question"

    body: str
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    base_score: int = 0  # votes from an imported source site, anonymous
    vote_version: int = 0
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    source: str | None = Field(default=None, unique=True, max_length=200)
    updated_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        return versioned(cls)


class AnswerBase(SQLModel):
    """What an answer's row and its HTTP shape (`AnswerPublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)
    question_id: UUID = Field(foreign_key="posts_question.id", index=True)
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    body: str
    score: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 1
    group_id: UUID | None = Field(default=None, index=True)
    visibility: Visibility = Field(sa_type=AutoString)


class Answer(AnswerBase, table=True):
    """An answer to a question, in its question's group and visibility."""

    __tablename__ = "posts_answer"

    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    base_score: int = 0
    vote_version: int = 0
    source: str | None = Field(default=None, unique=True, max_length=200)
    deleted_at: datetime | None = None

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        return versioned(cls)


class CommentBase(SQLModel):
    """What a comment's row and its HTTP shape (`CommentPublic`) share."""

    id: UUID = Field(default_factory=new_id, primary_key=True)
    parent_id: UUID = Field(index=True)
    question_id: UUID = Field(foreign_key="posts_question.id", index=True)
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    body: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 1


class Comment(CommentBase, table=True):
    """A short comment on a question or an answer (`parent_id`), in the question's thread."""

    __tablename__ = "posts_comment"

    parent_kind: str  # "question" | "answer"
    group_id: UUID | None = None
    visibility: Visibility = Field(sa_type=AutoString)
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source: str | None = Field(default=None, unique=True, max_length=200)
    deleted_at: datetime | None = None

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        return versioned(cls)


class QARevision(SQLModel, table=True):
    """Every state a question or answer has had, numbered from 1; never changed once written."""

    __tablename__ = "posts_qa_revision"

    item_id: UUID = Field(primary_key=True)
    number: int = Field(primary_key=True)
    kind: str  # "question" | "answer"
    editor_id: UUID
    title: str | None = None
    body: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Vote(SQLModel, table=True):
    """One person's vote on one question or answer."""

    __tablename__ = "posts_vote"

    item_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True)
    kind: str  # "question" | "answer"
    value: int  # -1 | 1
    created_at: datetime = Field(default_factory=utcnow)
