"""Routing's tables: the questions being routed, each round, each person asked, group
escalation settings and who follows which tag.

A round row (question, round) is the claim that makes a round happen once: the consumer
and every replica's escalation schedule insert it in the same transaction as the round's
`QuestionRouted` events, so a second writer fails on its key and sends nothing.
"""

from datetime import datetime
from uuid import UUID

from sqlmodel import JSON, Column, Field, SQLModel


class RoutingQuestion(SQLModel, table=True):
    """A question as asked (what routing ranks on) and where its routing stands."""

    __tablename__ = "routing_question"

    question_id: UUID = Field(primary_key=True)
    asker_id: UUID = Field(index=True)
    title: str
    body: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    group_id: UUID | None = Field(default=None, index=True)
    visibility: str  # Visibility
    created_at: datetime
    version: int
    # open: still routed and escalated; answered, closed, deleted: escalation stopped.
    status: str = "open"
    rounds: int = 0
    last_routed_at: datetime
    # When the next round is due; None once there is nothing left to escalate.
    next_round_at: datetime | None = Field(default=None, index=True)


class RoutingRound(SQLModel, table=True):
    """One round of a question's routing (1 at creation, then escalations)."""

    __tablename__ = "routing_round"

    question_id: UUID = Field(primary_key=True)
    round: int = Field(primary_key=True)
    routed_at: datetime
    # ranked: the best people not yet asked; owners / followers: the last resort.
    audience: str


class RoutingAsk(SQLModel, table=True):
    """One person asked about one question: why, with which evidence, and how they responded."""

    __tablename__ = "routing_ask"

    question_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True, index=True)
    round: int
    position: int  # 1 = the best of the round
    routed_at: datetime = Field(index=True)
    reason: str
    evidence: list[dict[str, object]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    status: str = "asked"  # asked | answered | declined
    responded_at: datetime | None = None
    decline_reason: str | None = None


class RoutingAnswer(SQLModel, table=True):
    """An answer to a routed question: deleting the last one lets the question escalate again."""

    __tablename__ = "routing_answer"

    answer_id: UUID = Field(primary_key=True)
    question_id: UUID = Field(index=True)
    author_id: UUID


class RoutingGroupSetting(SQLModel, table=True):
    """A group's escalation delay, set by its owner (groups without a row use the default)."""

    __tablename__ = "routing_group_setting"

    group_id: UUID = Field(primary_key=True)
    escalation_hours: float
    changed_by: UUID
    changed_at: datetime


class RoutingTagFollow(SQLModel, table=True):
    """Who follows which tag (from follow events), for a question's last round."""

    __tablename__ = "routing_tag_follow"

    tag: str = Field(primary_key=True)
    follower_id: UUID = Field(primary_key=True)
    active: bool
    # Follow events carry no version: the event time orders them.
    changed_at: datetime


TABLES: list[type[SQLModel]] = [
    RoutingQuestion,
    RoutingRound,
    RoutingAsk,
    RoutingAnswer,
    RoutingGroupSetting,
    RoutingTagFollow,
]
