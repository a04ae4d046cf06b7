"""Posts' HTTP request and response models."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlmodel import SQLModel

from services.posts.models import ArticleBase, PostBase, ReactionKind
from services.posts.parsing import MAX_TAGS, TAG_PATTERN, normalise_tag

POST_BODY_MAX = 5000
ARTICLE_BODY_MAX = 100_000
TITLE_MAX = 200
TAGS_MAX = MAX_TAGS


# What JSON Schema's `\S` (ECMA-262 regular expressions) counts as white space, so that a
# text the published pattern accepts is never refused here as blank (Python's `str.strip`
# also strips U+001C..U+001F and U+0085, which the schema allows).
ECMA_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
)


def _not_blank(value: str) -> str:
    if all(character in ECMA_WHITE_SPACE for character in value):
        raise ValueError("must not be blank")
    return value


def _tag(value: str) -> str:
    tag = normalise_tag(value)
    if not TAG_PATTERN.match(tag):
        raise ValueError("a tag is letters, digits, '-' or '_' (at most 50), starting alphanumeric")
    return tag


# `_not_blank` in the schema: some character that is not whitespace (Python's `\s`).
NOT_BLANK = {"pattern": r"\S"}
PostBody = Annotated[
    str,
    Field(min_length=1, max_length=POST_BODY_MAX, json_schema_extra=NOT_BLANK),
    AfterValidator(_not_blank),
]
ArticleBody = Annotated[
    str,
    Field(min_length=1, max_length=ARTICLE_BODY_MAX, json_schema_extra=NOT_BLANK),
    AfterValidator(_not_blank),
]
Title = Annotated[
    str,
    Field(min_length=1, max_length=TITLE_MAX, json_schema_extra=NOT_BLANK),
    AfterValidator(_not_blank),
]
# The schema says exactly what `_tag` accepts, so clients learn the rule from the OpenAPI.
TAG_INPUT = r"^#?[A-Za-z0-9][A-Za-z0-9_-]{0,49}$"
Tag = Annotated[str, Field(min_length=1, max_length=51, pattern=TAG_INPUT), AfterValidator(_tag)]
Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX)]


class AlwaysPresent(SQLModel):
    """A response built from a table's base: every field is always in the answer (the
    defaults are the table's), so its schema says each is required."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # type: ignore[assignment]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostCreate(Strict):
    body: PostBody
    group_id: UUID | None = Field(
        default=None, description="Post into this group; a reply may omit it (inherited)."
    )
    parent_id: UUID | None = Field(default=None, description="Reply to this post.")


class PostUpdate(Strict):
    body: PostBody


class PostPublic(PostBase, AlwaysPresent):
    formalized_as: list[UUID] = Field(
        default_factory=list, description="Articles formalized from this thread."
    )
    reactions: dict[str, int] = Field(default_factory=dict)
    my_reactions: list[ReactionKind] = Field(
        default_factory=list, description="The caller's own reactions to this post."
    )
    reply_count: int = Field(
        default=0, description="Direct replies shown to everyone (live and not hidden)."
    )
    hidden_at: datetime | None = Field(
        default=None,
        description="When a moderator hid it (only moderators, the owner and admins see it).",
    )


class ReactionCreate(Strict):
    kind: ReactionKind


class ArticleCreate(Strict):
    title: Title
    body: ArticleBody
    tags: Tags = Field(default_factory=list)
    group_id: UUID | None = None
    source_thread_id: UUID | None = Field(
        default=None, description="The thread this article formalizes (must be readable)."
    )


class ArticleUpdate(Strict):
    """Fields left out (or null) keep their value; any change makes a new revision."""

    title: Title | None = None
    body: ArticleBody | None = None
    tags: Tags | None = None


class Formalize(Strict):
    title: Title


class Contributor(BaseModel):
    user_id: UUID
    handle: str


class ArticlePublic(ArticleBase, AlwaysPresent):
    source_thread_id: UUID | None = Field(
        description="The thread (post or question) this article formalizes."
    )
    source_kind: Literal["post", "question"] | None = Field(
        default=None,
        description="What `source_thread_id` names: a post's thread or a question.",
    )
    contributors: list[Contributor] = Field(
        default_factory=list,
        description="Everyone credited: the thread's authors and who formalized it.",
    )
    version: int = Field(default=1, description="The number of the latest revision.")


class RevisionSummary(BaseModel):
    number: int
    editor_id: UUID
    title: str
    created_at: datetime


class RevisionPublic(RevisionSummary):
    article_id: UUID
    body: str
    tags: list[str]
