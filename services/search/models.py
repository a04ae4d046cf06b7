"""Search's projections: people and their skills, group membership, thanks, votes, acceptance.

The content index itself belongs to the engine (see `engines/`). Membership and thanks
rows are kept after removal (`is_member=False`, `is_thanked=False`) with the time of
the event that set them, so an older event arriving late cannot undo a newer one.
"""

from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel


class SearchUser(SQLModel, table=True):
    __tablename__ = "search_user"

    user_id: UUID = Field(primary_key=True)
    handle: str
    display_name: str
    changed_at: datetime


class SearchGroup(SQLModel, table=True):
    __tablename__ = "search_group"

    group_id: UUID = Field(primary_key=True)
    slug: str
    name: str
    visibility: str  # GroupVisibility
    owner_id: UUID


class SearchMembership(SQLModel, table=True):
    __tablename__ = "search_membership"

    group_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
    is_member: bool
    version: int = 0  # identity's version of the membership (0: from before versions)
    changed_at: datetime


class SearchThanks(SQLModel, table=True):
    """One person's "thanks" on one item: evidence for the item's author, kept per thanker.

    Engine-neutral on purpose: the index holds content, and thanks are looked up here
    for the candidates an engine returns, so both engines score them the same way.
    """

    __tablename__ = "search_thanks"

    # The primary key leads with content_id: counting thanks for candidate items is a
    # range scan of it.
    content_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True)
    is_thanked: bool
    changed_at: datetime


class SearchItemScore(SQLModel, table=True):
    """The vote score of a question or answer, as posts last numbered it (`version`)."""

    __tablename__ = "search_item_score"

    content_id: UUID = Field(primary_key=True)
    author_id: UUID
    score: int
    version: int
    changed_at: datetime


class SearchAcceptance(SQLModel, table=True):
    """Which answer a question has accepted (None: none any more), at the question's version."""

    __tablename__ = "search_acceptance"

    question_id: UUID = Field(primary_key=True)
    answer_id: UUID | None = Field(default=None, index=True)
    version: int
    changed_at: datetime


class SearchSkill(SQLModel, table=True):
    """A skill a person declares on their profile (normalised like a tag)."""

    __tablename__ = "search_skill"

    skill: str = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
