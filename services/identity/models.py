"""Identity's tables: users, groups, memberships and follows."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Index, UniqueConstraint, text
from sqlalchemy.orm import declared_attr
from sqlmodel import JSON, AutoString, Column, Field, SQLModel

from shared.events.contracts import FollowTarget, GroupRole, GroupVisibility, OrganisationRole
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
    # An analyst reads knowledge-health data.
    role: OrganisationRole = Field(
        default="member", sa_type=AutoString, sa_column_kwargs={"server_default": "member"}
    )
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


# The group list's order (`list_visible_groups`): a page is read from the index, not
# sorted from every group.
NAME_ORDER_INDEX = Index("ix_identity_group_name_id", "name", "id")


class Group(SQLModel, table=True):
    __tablename__ = "identity_group"
    __table_args__ = (OPEN_SLUG_INDEX, NAME_ORDER_INDEX)

    id: UUID = Field(default_factory=new_id, primary_key=True)
    slug: str = Field(index=True)
    name: str
    description: str = ""
    visibility: GroupVisibility = Field(sa_type=AutoString)
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
    role: GroupRole = Field(default="member", sa_type=AutoString)
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
    target_type: FollowTarget = Field(sa_type=AutoString)
    target: str
    created_at: datetime = Field(default_factory=utcnow)


class ExternalIdentity(SQLModel, table=True):
    """A person's account at an OpenID Provider (issuer + subject), linked to a Knowflow user."""

    __tablename__ = "identity_external_identity"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: UUID = Field(default_factory=new_id, primary_key=True)
    user_id: UUID = Field(foreign_key="identity_user.id", index=True)
    provider: str = Field(max_length=100)  # the configured name, when the link was made
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    last_sign_in_at: datetime | None = None


class ScimClient(SQLModel, table=True):
    """A provisioning client (an HR system or identity provider) allowed to call /scim/v2.

    It authenticates with its own bearer token, shown once when an admin creates it; only
    the token's SHA-256 is stored (a 256-bit random token needs no slow hash).
    """

    __tablename__ = "identity_scim_client"

    id: UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(unique=True, index=True)
    created_by: UUID = Field(foreign_key="identity_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class ScimLink(SQLModel, table=True):
    """What SCIM knows of a user or group beyond identity's own columns.

    `external_id` is the provisioning client's id for the resource. A group is served on
    /scim/v2/Groups only if it has a link (SCIM created it). `deleted_at` marks a SCIM
    DELETE: the resource answers 404 from then on, its content and row stay.
    """

    __tablename__ = "identity_scim_link"
    __table_args__ = (UniqueConstraint("kind", "external_id"),)

    kind: str = Field(primary_key=True)  # "User" or "Group"
    resource_id: UUID = Field(primary_key=True)
    external_id: str | None = Field(default=None, max_length=500)
    # A user's SCIM userName when it is not a valid handle (e.g. an e-mail address).
    user_name: str | None = Field(default=None, max_length=254, unique=True)
    deleted_at: datetime | None = None
    # Goes up on every SCIM change: names the resource's meta.version.
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class Erasure(SQLModel, table=True):
    """One delete-on-request (GDPR) of one person; its id is the capability to read the report.

    Random (not time-ordered), so a report cannot be found by guessing near a known one.
    """

    __tablename__ = "identity_erasure"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    user_id: UUID = Field(foreign_key="identity_user.id", unique=True, index=True)
    requested_at: datetime = Field(default_factory=utcnow)
    # "self" (the person, with their password) or "admin".
    requested_by: str


class ErasureReport(SQLModel, table=True):
    """What one service removed for one erasure, by kind ({"posts_anonymised": 3})."""

    __tablename__ = "identity_erasure_report"

    erasure_id: UUID = Field(foreign_key="identity_erasure.id", primary_key=True)
    service: str = Field(primary_key=True)
    removed: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reported_at: datetime


class AuthSession(SQLModel, table=True):
    """One sign-in: the family of refresh tokens it rotates through; access tokens carry its id.

    Revoked (logout, password change or reset, a spent refresh token presented again) it
    refreshes no more, and an `AccessRevoked` naming it tells every verifier.
    """

    __tablename__ = "identity_session"

    id: UUID = Field(default_factory=new_id, primary_key=True)
    user_id: UUID = Field(foreign_key="identity_user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    refreshed_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None  # RevocationReason


class RefreshToken(SQLModel, table=True):
    """A refresh token, by its SHA-256 only; `spent_at` once rotated (a second use is theft)."""

    __tablename__ = "identity_refresh_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    session_id: UUID = Field(foreign_key="identity_session.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    spent_at: datetime | None = None


class PasswordReset(SQLModel, table=True):
    """A password reset link's token, by its SHA-256 only: single use, until `expires_at`."""

    __tablename__ = "identity_password_reset"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: UUID = Field(foreign_key="identity_user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class SsoHandoff(SQLModel, table=True):
    """A single sign-on's one-time hand-off code, by its SHA-256 only.

    The callback gives it to the web app (in the redirect to `return_to`) instead of tokens;
    the web app trades it once, within `expires_at`, for the person's tokens.
    """

    __tablename__ = "identity_sso_handoff"

    code_hash: str = Field(primary_key=True, max_length=64)
    user_id: UUID = Field(foreign_key="identity_user.id", index=True)
    method: str  # SignInMethod the exchange starts the session with ("sso")
    provider: str  # the identity provider that vouched for the person
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


# One pending request per person and group; decided ones stay as history beside it.
PENDING_JOIN_REQUEST_INDEX = Index(
    "uq_identity_join_request_pending",
    "group_id",
    "user_id",
    unique=True,
    sqlite_where=text("status = 'pending'"),
    postgresql_where=text("status = 'pending'"),
)


class JoinRequest(SQLModel, table=True):
    """Someone asking to join a private group; its owner or a moderator approves or declines.

    Erased with the person (the message is theirs). `decided_by` is kept for the group's
    managers and the audit log, never shown to the requester (it would name a member).
    """

    __tablename__ = "identity_join_request"
    __table_args__ = (PENDING_JOIN_REQUEST_INDEX,)

    id: UUID = Field(default_factory=new_id, primary_key=True)
    group_id: UUID = Field(foreign_key="identity_group.id", index=True)
    user_id: UUID = Field(foreign_key="identity_user.id", index=True)
    message: str = Field(default="", max_length=500)
    status: str = Field(default="pending", max_length=20)  # JoinRequestStatus
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    decided_by: UUID | None = Field(default=None, foreign_key="identity_user.id")
