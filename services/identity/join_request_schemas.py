"""HTTP models of requests to join a private group."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.identity.schemas import Strict

JoinRequestStatus = Literal["pending", "approved", "declined"]


class JoinRequestCreate(Strict):
    message: str = Field(
        default="", max_length=500, description="A short note to the group's managers."
    )


class JoinRequestPublic(BaseModel):
    """A request as its requester sees it: ids and status, nothing about the group."""

    id: UUID
    group_id: UUID
    user_id: UUID
    status: JoinRequestStatus
    message: str
    created_at: datetime
    decided_at: datetime | None = None


class JoinRequestDetail(JoinRequestPublic):
    """A request as the group's owner and moderators see it: who asks, and who decided."""

    handle: str
    display_name: str
    decided_by: UUID | None = None
