"""Posts' tables: posts and replies, articles with their revisions, tags, and the group projection."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.orm import declared_attr
from sqlmodel import JSON, Column, Field, SQLModel

from shared.ids import new_id, utcnow
from shared.preconditions import versioned


class Post(SQLModel, table=True):
    """A flow post or a reply; a root post's `thread_id` is its own id."""

    __tablename__ = "posts_post"

    id: UUID = Field(default_factory=new_id, primary_key=True)
    kind: str  # "post" | "reply"
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    group_id: UUID | None = Field(default=None, index=True)
    visibility: str  # Visibility
    body: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parent_id: UUID | None = Field(default=None, foreign_key="posts_post.id", index=True)
    thread_id: UUID = Field(index=True)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        # `version` guards every UPDATE: a write based on a stale read matches no row.
        return versioned(cls)


class Article(SQLModel, table=True):
    """A stock article; `version` is the number of its latest revision."""

    __tablename__ = "posts_article"

    id: UUID = Field(default_factory=new_id, primary_key=True)
    author_id: UUID = Field(index=True)
    author_handle: str = ""
    group_id: UUID | None = Field(default=None, index=True)
    visibility: str  # Visibility
    title: str
    body: str
    given_tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source_thread_id: UUID | None = Field(default=None, foreign_key="posts_post.id", index=True)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
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
    visibility: str  # GroupVisibility
    as_of: datetime


class KnownMembership(SQLModel, table=True):
    """Whether a user belongs to a group, per the highest version of identity's heard so far."""

    __tablename__ = "posts_membership"

    group_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
    is_member: bool = True
    version: int = 0  # identity's version of the membership (0: from before versions)
    as_of: datetime


class Reaction(SQLModel, table=True):
    """One person's reaction of one kind to one post."""

    __tablename__ = "posts_reaction"

    post_id: UUID = Field(foreign_key="posts_post.id", primary_key=True)
    user_id: UUID = Field(primary_key=True)
    kind: str = Field(primary_key=True)  # "like" | "thanks"
    created_at: datetime = Field(default_factory=utcnow)
