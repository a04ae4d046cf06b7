"""HTTP models of roles, group edits, ownership transfers and the audit log."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.identity.schemas import Strict
from shared.events.contracts import AuditActorKind, OrganisationRole


class OrganisationRoleChange(Strict):
    role: OrganisationRole


class OrganisationRolePublic(BaseModel):
    user_id: UUID
    role: OrganisationRole


class MemberRoleChange(Strict):
    # The owner's role moves only by transferring ownership.
    role: Literal["moderator", "member"]


class GroupUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)


class OwnershipTransfer(Strict):
    user_id: UUID = Field(description="The member who becomes the owner.")
    previous_owner_role: Literal["moderator", "member"] = Field(
        default="moderator", description="What the outgoing owner stays as."
    )


class AuditEntryPublic(BaseModel):
    sequence: int
    id: UUID
    actor_id: UUID | None
    actor_kind: AuditActorKind
    action: str
    target: str
    at: datetime
    ip: str | None
    request_id: str | None
    service: str
    details: dict[str, str]
    previous_hash: str
    hash: str
