"""Identity's HTTP request and response models."""

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from services.identity.policy import valid_display_name
from shared.events.contracts import FollowTarget, GroupRole, GroupVisibility

Handle = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{2,32}$", to_lower=True)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", to_lower=True)]
Skill = Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]
# No invisible, bidirectional or control characters (see services/identity/policy.py).
DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(valid_display_name)
]
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# email-validator refuses special-use domains (RFC 6761); the schema says so too.
NOT_SPECIAL_USE = (
    r"^(?!.*\.([Aa][Rr][Pp][Aa]|[Ii][Nn][Vv][Aa][Ll][Ii][Dd]|[Ll][Oo][Cc][Aa][Ll]|"
    r"[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]|[Oo][Nn][Ii][Oo][Nn]|[Tt][Ee][Ss][Tt])\.?$)"
)


class RegisterRequest(Strict):
    handle: Handle
    email: EmailStr = Field(max_length=254, json_schema_extra={"pattern": NOT_SPECIAL_USE})
    password: str = Field(
        min_length=8,
        max_length=256,
        description="Not a common password, and not containing the handle or e-mail name.",
    )
    display_name: DisplayName


class UserImport(Strict):
    """An account brought from elsewhere by an admin: no email, no password."""

    handle: Handle
    display_name: DisplayName
    created_at: AwareDatetime = Field(description="When the account was made at its source.")
    source: str = Field(
        min_length=1,
        max_length=200,
        description="Where it comes from (e.g. the user's URL); a second import finds it.",
    )
    bio: str = Field(default="", max_length=2000)


class LoginRequest(Strict):
    login: str = Field(min_length=1, max_length=254, description="Handle or email.")
    password: str = Field(min_length=1, max_length=256)


class UserPublic(BaseModel):
    id: UUID
    handle: str
    display_name: str
    bio: str
    skills: list[str]
    created_at: datetime
    # False for a former member (deactivated): their content stays, shown as theirs.
    active: bool = True


class UserMe(UserPublic):
    email: str
    is_admin: bool
    role: str


class UserAdminView(UserMe):
    """A person as an organisation admin sees them (the directory's admin view)."""

    deactivated_at: datetime | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str = Field(
        description="Exchanged once at POST /auth/refresh for new tokens; a second use ends "
        "the session."
    )
    refresh_expires_in: int
    session_id: UUID
    user: UserMe


class ProfileUpdate(Strict):
    display_name: DisplayName | None = None
    bio: str | None = Field(default=None, max_length=2000)
    skills: list[Skill] | None = Field(default=None, max_length=50)


class GroupCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    slug: Slug
    description: str = Field(default="", max_length=2000)
    visibility: GroupVisibility = "open"


class GroupPublic(BaseModel):
    id: UUID
    slug: str
    name: str
    description: str
    visibility: GroupVisibility
    owner_id: UUID
    created_at: datetime
    is_member: bool = False


class GroupDetail(GroupPublic):
    membership_version: int = Field(
        default=0,
        description=(
            "How many times the caller's membership of this group changed (joins and "
            "removals; 0 if never a member): services keeping a copy apply the highest."
        ),
    )
    role: GroupRole | None = Field(
        default=None, description="The caller's role in the group (None: not a member)."
    )


class MemberAdd(Strict):
    user_id: UUID


class MemberPublic(BaseModel):
    user_id: UUID
    handle: str
    display_name: str
    role: str
    joined_at: datetime


class FollowCreate(Strict):
    target_type: FollowTarget
    target: str = Field(min_length=1, max_length=64)

    @field_validator("target")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return value.strip().lower().removeprefix("#")


class FollowPublic(BaseModel):
    id: UUID
    target_type: FollowTarget
    target: str
    created_at: datetime
