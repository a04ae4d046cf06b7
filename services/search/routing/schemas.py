"""Routing's HTTP request and response models."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.contracts import RoutedEvidence

AskStatus = Literal["asked", "answered", "declined"]


class RoutedPerson(BaseModel):
    user_id: UUID
    handle: str | None = Field(description="Null until the person's profile has reached search.")
    reason: str = Field(description='Why they were asked ("you were asked because …").')
    evidence: list[RoutedEvidence] = Field(
        description="Items behind the reason; only what the asker and the question's readers may see."
    )
    status: AskStatus
    responded_at: datetime | None


class RoutingRoundPublic(BaseModel):
    round: int = Field(description="1 at creation; later rounds are escalations.")
    routed_at: datetime
    people: list[RoutedPerson]


class QuestionRouting(BaseModel):
    question_id: UUID
    rounds: list[RoutingRoundPublic]


class DeclineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, min_length=1, max_length=500)


class GroupEscalationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    escalation_hours: float = Field(gt=0, le=24 * 30)


class GroupRoutingPublic(BaseModel):
    group_id: UUID
    escalation_hours: float
