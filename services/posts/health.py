"""Knowledge health: how well questions get answered, per tag and per group, and who knows.

Two queries per report, whatever the number of questions (questions with their tags and
first answer time; answer authors per tag); medians are taken in Python, as SQLite has none.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlmodel import Session, col

from services.posts.models import Answer, ContentTag, Question
from services.posts.qa_schemas import HealthFigures, TagHealth
from shared.ids import utcnow


@dataclass
class Tally:
    """What one tag or group adds up to, question by question."""

    questions: set[UUID] = field(default_factory=set)
    answered: set[UUID] = field(default_factory=set)
    unanswered_older: set[UUID] = field(default_factory=set)
    hours_to_first_answer: dict[UUID, float] = field(default_factory=dict)
    hours_to_acceptance: dict[UUID, float] = field(default_factory=dict)
    answerers: set[UUID] = field(default_factory=set)
    accepted_answerers: set[UUID] = field(default_factory=set)

    def figures(self) -> HealthFigures:
        asked = len(self.questions)
        unanswered = asked - len(self.answered)
        first = list(self.hours_to_first_answer.values())
        accepted = list(self.hours_to_acceptance.values())
        return HealthFigures(
            questions=asked,
            answered_share=round(len(self.answered) / asked, 4) if asked else 0.0,
            median_hours_to_first_answer=round(median(first), 2) if first else None,
            median_hours_to_acceptance=round(median(accepted), 2) if accepted else None,
            unanswered=unanswered,
            unanswered_older=len(self.unanswered_older),
            evidence_holders=len(self.answerers),
            accepted_answerers=len(self.accepted_answerers),
            at_risk=unanswered > 0 and not self.answerers,
        )


def hours(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / 3600, 0.0)


def tally(
    *, session: Session, group_id: UUID | None, unanswered_after_hours: int
) -> tuple[Tally, dict[str, Tally]]:
    """The whole scope's tally and one per tag (live questions; in `group_id` if given)."""
    now = utcnow()
    first_answer = (
        select(func.min(col(Answer.created_at)))
        .where(col(Answer.question_id) == col(Question.id), col(Answer.deleted_at).is_(None))
        .correlate(Question)
        .scalar_subquery()
    )
    query = (
        select(
            col(Question.id),
            col(Question.created_at),
            col(Question.accepted_at),
            col(Question.answer_count),
            first_answer,
            col(ContentTag.tag),
        )
        .outerjoin(ContentTag, col(ContentTag.content_id) == Question.id)
        .where(col(Question.deleted_at).is_(None))
    )
    evidence = (
        select(
            col(ContentTag.tag),
            col(Answer.author_id),
            col(Answer.id) == col(Question.accepted_answer_id),
        )
        .join(Question, col(Question.id) == Answer.question_id)
        .outerjoin(ContentTag, col(ContentTag.content_id) == Question.id)
        .where(col(Answer.deleted_at).is_(None), col(Question.deleted_at).is_(None))
    )
    if group_id is not None:
        query = query.where(col(Question.group_id) == group_id)
        evidence = evidence.where(col(Question.group_id) == group_id)
    whole = Tally()
    per_tag: dict[str, Tally] = defaultdict(Tally)
    cutoff = now - timedelta(hours=unanswered_after_hours)
    questions: list[Any] = list(session.execute(query).all())
    answerers: list[Any] = list(session.execute(evidence).all())
    for question_id, created_at, accepted_at, answer_count, first, tag in questions:
        tallies = [whole] if tag is None else [whole, per_tag[tag]]
        for item in tallies:
            item.questions.add(question_id)
            if answer_count > 0:
                item.answered.add(question_id)
            elif created_at < cutoff:
                item.unanswered_older.add(question_id)
            if first is not None:
                item.hours_to_first_answer[question_id] = hours(first, created_at)
            if accepted_at is not None:
                item.hours_to_acceptance[question_id] = hours(accepted_at, created_at)
    for tag, author_id, is_accepted in answerers:
        tallies = [whole] if tag is None else [whole, per_tag[tag]]
        for item in tallies:
            item.answerers.add(author_id)
            if is_accepted:
                item.accepted_answerers.add(author_id)
    return whole, per_tag


def tag_health(per_tag: dict[str, Tally]) -> list[TagHealth]:
    """Per tag, most asked first."""
    items = [TagHealth(tag=tag, **item.figures().model_dump()) for tag, item in per_tag.items()]
    items.sort(key=lambda item: (-item.questions, item.tag))
    return items
