"""Digests' projections, built only from events (content, tags, follows, groups, members,
users), and the record of digests sent."""

from datetime import datetime
from uuid import UUID

from sqlmodel import JSON, Column, Field, SQLModel


class DigestContent(SQLModel, table=True):
    """One post, reply, article, question or answer as last seen; a deleted one stays as a
    tombstone."""

    __tablename__ = "digests_content"

    content_id: UUID = Field(primary_key=True)
    kind: str  # ContentKind
    author_id: UUID = Field(index=True)
    group_id: UUID | None = Field(default=None, index=True)
    visibility: str  # Visibility
    title: str | None = None
    excerpt: str = ""
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parent_id: UUID | None = None
    # The root of the conversation this item belongs to (itself for a root).
    thread_root_id: UUID = Field(index=True)
    created_at: datetime = Field(index=True)
    version: int
    deleted: bool = False
    # Hidden by a moderator: left out of every digest until a later version shows it again.
    hidden: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class DigestContentTag(SQLModel, table=True):
    """Which tags an item carries, so a tag follow is a join rather than a scan."""

    __tablename__ = "digests_content_tag"

    tag: str = Field(primary_key=True)
    content_id: UUID = Field(primary_key=True, index=True)


class DigestFollow(SQLModel, table=True):
    """Who follows which person, tag or group; `active` false once unfollowed."""

    __tablename__ = "digests_follow"

    follower_id: UUID = Field(primary_key=True)
    target_type: str = Field(primary_key=True)  # FollowTarget
    target: str = Field(primary_key=True)
    active: bool = True
    # Follow events carry no version: the event time orders them.
    changed_at: datetime


class DigestGroup(SQLModel, table=True):
    __tablename__ = "digests_group"

    group_id: UUID = Field(primary_key=True)
    visibility: str  # GroupVisibility
    name: str | None = None
    slug: str | None = None


class DigestMembership(SQLModel, table=True):
    """Membership of a group; `active` false once the member left or was removed."""

    __tablename__ = "digests_membership"

    group_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
    active: bool = True
    version: int = 0  # identity's version of the membership (0: from before versions)
    changed_at: datetime


class DigestUser(SQLModel, table=True):
    __tablename__ = "digests_user"

    user_id: UUID = Field(primary_key=True)
    handle: str = Field(index=True)
    display_name: str
    changed_at: datetime


class DigestPreference(SQLModel, table=True):
    """A person's digest schedule, from the notifications service; none: the defaults."""

    __tablename__ = "digests_preference"

    user_id: UUID = Field(primary_key=True)
    frequency: str  # DigestFrequency
    hour: int  # local hour in `timezone`
    timezone: str  # IANA zone name
    version: int
    changed_at: datetime


class DigestSent(SQLModel, table=True):
    """One person's digest for one window; the key makes it go out once across replicas.

    A row with `items` 0 records that nothing qualified (no event was sent), so the
    window is not rebuilt on every tick.
    """

    __tablename__ = "digests_sent"

    user_id: UUID = Field(primary_key=True)
    period: str = Field(primary_key=True)  # DigestPeriod
    window_end: datetime = Field(primary_key=True, index=True)  # the person's local boundary
    sent_at: datetime
    items: int
    event_id: UUID | None = None  # the DigestReady event, if anything was sent


class DigestSentItem(SQLModel, table=True):
    """An item a person's digest already carried: a later digest never repeats it."""

    __tablename__ = "digests_sent_item"

    user_id: UUID = Field(primary_key=True)
    content_id: UUID = Field(primary_key=True)
    sent_at: datetime


TABLES: list[type[SQLModel]] = [
    DigestContent,
    DigestContentTag,
    DigestFollow,
    DigestGroup,
    DigestMembership,
    DigestUser,
    DigestPreference,
    DigestSent,
    DigestSentItem,
]
