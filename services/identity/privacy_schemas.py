"""Identity's HTTP models for delete on request (GDPR erasure) and the export of one's data."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.identity.join_request_schemas import JoinRequestPublic
from services.identity.schemas import FollowPublic, Strict, UserMe


class ErasureBySelf(Strict):
    """The person confirms with their password."""

    password: str = Field(min_length=1, max_length=256)


class ErasureByAdmin(Strict):
    """An admin confirms explicitly: erasure cannot be undone."""

    confirm: Literal[True]


class ServiceReport(BaseModel):
    service: str
    # How many of each kind the service removed or anonymised.
    removed: dict[str, int]
    reported_at: datetime


class ErasurePublic(BaseModel):
    """The combined report; it names no person (its id is the credential to read it)."""

    id: UUID
    requested_at: datetime
    complete: bool
    reports: list[ServiceReport]
    # Services that have not reported yet (each does within seconds of the request).
    pending: list[str]


class MembershipExport(BaseModel):
    group_id: UUID
    slug: str
    name: str
    role: str
    joined_at: datetime


class IdentityExport(BaseModel):
    """What identity holds about the caller; `parts` name the other services' exports."""

    exported_at: datetime
    profile: UserMe
    follows: list[FollowPublic]
    memberships: list[MembershipExport]
    join_requests: list[JoinRequestPublic] = []
    parts: dict[str, str]
