"""Search's projections of identity: people (for expert results) and group membership.

The content index itself belongs to the engine (see `engines/`). Membership rows are
kept after removal (`is_member=False`) with the time of the event that set them, so
an older event arriving late cannot undo a newer one.
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
    changed_at: datetime
