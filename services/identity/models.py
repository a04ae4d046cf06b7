"""Identity's tables: users, groups, memberships and follows."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Index, UniqueConstraint, text
from sqlalchemy.orm import declared_attr
from sqlmodel import JSON, Column, Field, SQLModel

from shared.ids import new_id, utcnow
from shared.preconditions import versioned


class User(SQLModel, table=True):
    __tablename__ = "identity_user"

    id: UUID = Field(default_factory=new_id, primary_key=True)
    handle: str = Field(unique=True, index=True)
    email: str = Field(unique=True, index=True)
    password_hash: str
    display_name: str
    bio: str = ""
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # OrganisationRole: admin, member or analyst (reads knowledge-health data).
    role: str = Field(default="member", sa_column_kwargs={"server_default": "member"})
    # False once deactivated (by an admin or SCIM `active: false`): no sign-in, tokens refused.
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})
    deactivated_at: datetime | None = None
    # Set when the person's data was erased on request (GDPR); the row stays as a tombstone.
    erased_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # Set on accounts imported by an admin (e.g. a Stack Exchange user's URL): such an
    # account has no password (cannot sign in) and a second import with it finds it.
    import_source: str | None = Field(default=None, max_length=200, unique=True, index=True)
    # Goes up on every profile change; names the profile's ETag and guards its UPDATEs.
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        return versioned(cls)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# An open group's slug names it for everyone. A private group's slug is checked against
# nothing a non-member cannot see: refusing it would reveal that a private group uses it.
OPEN_SLUG_INDEX = Index(
    "uq_identity_group_open_slug",
    "slug",
    unique=True,
    sqlite_where=text("visibility = 'open'"),
    postgresql_where=text("visibility = 'open'"),
)


class Group(SQLModel, table=True):
    __tablename__ = "identity_group"
    __table_args__ = (OPEN_SLUG_INDEX,)

    id: UUID = Field(default_factory=new_id, primary_key=True)
    slug: str = Field(index=True)
    name: str
    description: str = ""
    visibility: str  # GroupVisibility
    owner_id: UUID = Field(foreign_key="identity_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    # Goes up on every edit and ownership transfer; names the group's ETag, guards UPDATEs.
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        return versioned(cls)


class Membership(SQLModel, table=True):
    __tablename__ = "identity_membership"

    group_id: UUID = Field(foreign_key="identity_group.id", primary_key=True)
    user_id: UUID = Field(foreign_key="identity_user.id", primary_key=True, index=True)
    role: str = "member"  # GroupRole: owner, moderator or member
    created_at: datetime = Field(default_factory=utcnow)


class MembershipVersion(SQLModel, table=True):
    """How many times a membership (group, user) changed; kept after removal, never reset.

    Every add and removal bumps it and the membership events carry it, so the other
    services order facts about a membership by identity's count, not by their clocks.
    """

    __tablename__ = "identity_membership_version"

    group_id: UUID = Field(foreign_key="identity_group.id", primary_key=True)
    user_id: UUID = Field(foreign_key="identity_user.id", primary_key=True)
    version: int


class Follow(SQLModel, table=True):
    __tablename__ = "identity_follow"
    __table_args__ = (UniqueConstraint("follower_id", "target_type", "target"),)

    id: UUID = Field(default_factory=new_id, primary_key=True)
    follower_id: UUID = Field(foreign_key="identity_user.id", index=True)
    target_type: str  # FollowTarget
    target: str
    created_at: datetime = Field(default_factory=utcnow)
