"""Routing's rules: recording rounds, escalating them, what stops them, and who may see them.

Rounds: 1 at creation (the best `people_per_round`, see `ranking`), 2 after the group's
escalation delay (the next best not yet asked), 3 after another delay: the group's owner
(a group's question) or the followers of the question's tags (a public one). Then it
stops. An answer, an acceptance, a close or a deletion stops it at any point. Nothing here
commits: the consumer runner, the request or `escalation.escalate_due` owns the transaction.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import Session, col, select

from services.search.engines.base import SearchEngine, normalise_tag
from services.search.models import SearchGroup, SearchUser
from services.search.routing.models import (
    RoutingAnswer,
    RoutingAsk,
    RoutingGroupSetting,
    RoutingQuestion,
    RoutingRound,
    RoutingTagFollow,
)
from services.search.routing.ranking import (
    DECLINED,
    RANKED_ROUNDS,
    Pick,
    can_read,
    is_member,
    last_resort,
    rank_people,
)
from services.search.routing.settings import RoutingSettings
from services.search.semantic.service import Semantic
from shared.auth import Principal
from shared.db import in_list
from shared.errors import Conflict, Forbidden, NotFound
from shared.events.contracts import QuestionRouted, QuestionSnapshot
from shared.events.outbox import record_event

SOURCE = "/knowflow/search/routing"
LAST_ROUND = 3
OPEN = "open"
ANSWERED = "answered"


@dataclass(frozen=True)
class RoundReport:
    question_id: UUID
    round: int
    asked: list[UUID]


def escalation_hours(
    *, session: Session, group_id: UUID | None, settings: RoutingSettings
) -> float:
    """The delay before a question's next round: its group's setting, else the default."""
    if group_id is not None:
        setting = session.get(RoutingGroupSetting, group_id)
        if setting is not None:
            return setting.escalation_hours
    return settings.escalation_hours


# --- recording rounds --------------------------------------------------------------------


def do_record_round(
    *,
    session: Session,
    question: RoutingQuestion,
    round_number: int,
    audience: str,
    picks: Sequence[Pick],
    now: datetime,
    settings: RoutingSettings,
) -> RoundReport:
    """Claim the round, ask each pick (a `QuestionRouted` each) and schedule the next round.

    The round row's key makes a concurrent writer of the same round fail at flush/commit.
    """
    session.add(
        RoutingRound(
            question_id=question.question_id, round=round_number, routed_at=now, audience=audience
        )
    )
    session.flush()
    for position, pick in enumerate(picks, start=1):
        session.add(
            RoutingAsk(
                question_id=question.question_id,
                user_id=pick.user_id,
                round=round_number,
                position=position,
                routed_at=now,
                reason=pick.reason,
                evidence=[item.model_dump(mode="json") for item in pick.evidence],
            )
        )
        record_event(
            session,
            QuestionRouted(
                question_id=question.question_id,
                title=question.title,
                user_id=pick.user_id,
                asker_id=question.asker_id,
                round=round_number,
                reason=pick.reason,
                evidence=pick.evidence,
                group_id=question.group_id,
                visibility=question.visibility,
            ),
            source=SOURCE,
        )
    question.rounds = round_number
    question.last_routed_at = now
    hours = escalation_hours(session=session, group_id=question.group_id, settings=settings)
    question.next_round_at = now + timedelta(hours=hours) if round_number < LAST_ROUND else None
    session.add(question)
    session.flush()
    return RoundReport(
        question_id=question.question_id,
        round=round_number,
        asked=[pick.user_id for pick in picks],
    )


def do_route_new_question(
    *,
    session: Session,
    engine: SearchEngine,
    data: QuestionSnapshot,
    now: datetime,
    settings: RoutingSettings,
    semantic: Semantic,
) -> RoundReport | None:
    """Record a new question and ask the first round; a question seen before does nothing."""
    if session.get(RoutingQuestion, data.content_id) is not None:
        return None
    created_at = data.created_at
    question = RoutingQuestion(
        question_id=data.content_id,
        asker_id=data.author_id,
        title=data.title or "",
        body=data.body,
        tags=list(dict.fromkeys(tag for tag in map(normalise_tag, data.tags) if tag)),
        group_id=data.group_id,
        visibility=data.visibility,
        created_at=created_at,
        version=data.version,
        last_routed_at=now,
    )
    if data.duplicate_of is not None or data.accepted_answer_id is not None:
        question.status = "closed" if data.duplicate_of else ANSWERED
    if now - created_at > timedelta(hours=settings.route_questions_newer_than_hours):
        # History (an import): remembered, so later answers find it, but nobody is asked.
        question.status = question.status if question.status != OPEN else "historic"
    session.add(question)
    session.flush()
    if question.status != OPEN:
        return None
    picks = rank_people(
        session=session,
        engine=engine,
        question=question,
        now=now,
        settings=settings,
        limit=settings.people_per_round,
        semantic=semantic,
    )
    return do_record_round(
        session=session,
        question=question,
        round_number=1,
        audience="ranked",
        picks=picks,
        now=now,
        settings=settings,
    )


def do_escalate(
    *,
    session: Session,
    engine: SearchEngine,
    question_id: UUID,
    now: datetime,
    settings: RoutingSettings,
    semantic: Semantic,
) -> RoundReport | None:
    """The question's next round if it is still open and due; otherwise nothing."""
    question = session.get(RoutingQuestion, question_id)
    if question is None or question.status != OPEN or question.next_round_at is None:
        return None
    if question.next_round_at > now or question.rounds >= LAST_ROUND:
        return None
    round_number = question.rounds + 1
    if round_number <= RANKED_ROUNDS:
        picks = rank_people(
            session=session,
            engine=engine,
            question=question,
            now=now,
            settings=settings,
            limit=settings.people_per_round,
            semantic=semantic,
        )
        audience = "ranked"
    else:
        picks = last_resort(session=session, question=question, now=now, settings=settings)
        audience = "owners" if question.group_id else "followers"
    return do_record_round(
        session=session,
        question=question,
        round_number=round_number,
        audience=audience,
        picks=picks,
        now=now,
        settings=settings,
    )


def list_due(*, session: Session, now: datetime, limit: int = 500) -> list[UUID]:
    """Open questions whose next round is due, oldest first."""
    query = (
        select(RoutingQuestion.question_id)
        .where(
            RoutingQuestion.status == OPEN,
            col(RoutingQuestion.next_round_at).is_not(None),
            col(RoutingQuestion.next_round_at) <= now,
        )
        .order_by(col(RoutingQuestion.next_round_at), col(RoutingQuestion.question_id))
        .limit(limit)
    )
    return list(session.exec(query).all())


# --- what happens to the question ------------------------------------------------------------


def _stop(question: RoutingQuestion, status: str) -> None:
    if question.status in (OPEN, "historic") or status == "deleted":
        question.status = status
    question.next_round_at = None


def do_mark_answered(
    *,
    session: Session,
    question_id: UUID,
    author_id: UUID | None,
    at: datetime,
    answer_id: UUID | None = None,
) -> None:
    """An answer (or an acceptance) stops escalation; a routed author is marked answered."""
    question = session.get(RoutingQuestion, question_id)
    if question is None:
        return
    known = answer_id is not None and session.get(RoutingAnswer, answer_id) is not None
    if answer_id is not None and author_id is not None and not known:
        session.add(
            RoutingAnswer(answer_id=answer_id, question_id=question_id, author_id=author_id)
        )
    if question.status in (OPEN, "historic"):
        _stop(question, ANSWERED)
        session.add(question)
    if author_id is None:
        return
    ask = session.get(RoutingAsk, (question_id, author_id))
    if ask is not None and ask.status != ANSWERED:
        ask.status, ask.responded_at = ANSWERED, at
        session.add(ask)


def do_forget_answer(
    *, session: Session, answer_id: UUID, at: datetime, settings: RoutingSettings
) -> None:
    """An answer was deleted: a routed question left with none escalates again from `at`."""
    answer = session.get(RoutingAnswer, answer_id)
    if answer is None:
        return
    session.delete(answer)
    session.flush()
    question = session.get(RoutingQuestion, answer.question_id)
    remaining = session.exec(
        select(RoutingAnswer.answer_id).where(RoutingAnswer.question_id == answer.question_id)
    ).first()
    if question is None or remaining is not None or question.status != ANSWERED:
        return
    if question.rounds == 0:
        question.status = "historic"  # never routed: nothing to resume
    else:
        question.status = OPEN
        hours = escalation_hours(session=session, group_id=question.group_id, settings=settings)
        question.last_routed_at = max(question.last_routed_at, at)
        question.next_round_at = (
            question.last_routed_at + timedelta(hours=hours)
            if question.rounds < LAST_ROUND
            else None
        )
    session.add(question)


def do_update_question(*, session: Session, data: QuestionSnapshot) -> None:
    """A newer state of the question: text, tags, and whether it was answered or closed."""
    question = session.get(RoutingQuestion, data.content_id)
    if question is None or data.version <= question.version:
        return
    question.title, question.body, question.version = data.title or "", data.body, data.version
    question.tags = list(dict.fromkeys(tag for tag in map(normalise_tag, data.tags) if tag))
    question.group_id, question.visibility = data.group_id, data.visibility
    if data.duplicate_of is not None:
        _stop(question, "closed")
    elif data.accepted_answer_id is not None:
        _stop(question, ANSWERED)
    session.add(question)


def do_stop_question(*, session: Session, question_id: UUID, status: str) -> None:
    """Closed or deleted: no more rounds."""
    question = session.get(RoutingQuestion, question_id)
    if question is not None:
        _stop(question, status)
        session.add(question)


def do_set_tag_follow(
    *, session: Session, follower_id: UUID, tag: str, active: bool, at: datetime
) -> None:
    """Record following or unfollowing a tag, unless a newer change is already known."""
    tag = normalise_tag(tag)
    follow = session.get(RoutingTagFollow, (tag, follower_id))
    if follow is None:
        session.add(
            RoutingTagFollow(tag=tag, follower_id=follower_id, active=active, changed_at=at)
        )
        return
    stored = follow.changed_at
    if at > stored or (at == stored and not active):
        follow.active, follow.changed_at = active, at
        session.add(follow)


# --- requests ------------------------------------------------------------------------------


def check_question(*, session: Session, principal: Principal, question_id: UUID) -> RoutingQuestion:
    """The routed question if the caller may read it (404 otherwise, as posts answers)."""
    question = session.get(RoutingQuestion, question_id)
    if question is None or not can_read(session=session, question=question, principal=principal):
        raise NotFound("no such question")
    return question


def get_routing(
    *, session: Session, principal: Principal, question_id: UUID
) -> tuple[RoutingQuestion, list[RoutingRound], list[RoutingAsk], dict[UUID, str]]:
    """The question's rounds and the people asked, for its asker or an admin."""
    question = check_question(session=session, principal=principal, question_id=question_id)
    if principal.user_id != question.asker_id and not principal.is_admin:
        raise Forbidden("only the asker and administrators may see who was asked")
    rounds = session.exec(
        select(RoutingRound)
        .where(RoutingRound.question_id == question_id)
        .order_by(col(RoutingRound.round))
    ).all()
    asks = session.exec(
        select(RoutingAsk)
        .where(RoutingAsk.question_id == question_id)
        .order_by(col(RoutingAsk.round), col(RoutingAsk.position))
    ).all()
    ids = [ask.user_id for ask in asks]
    handles = {
        user.user_id: user.handle
        for user in session.exec(select(SearchUser).where(in_list(SearchUser.user_id, ids))).all()
    }
    return question, list(rounds), list(asks), handles


def do_decline(
    *, session: Session, principal: Principal, question_id: UUID, reason: str | None, at: datetime
) -> RoutingAsk:
    """A routed person says "not my area"; their later rankings on these tags learn from it."""
    check_question(session=session, principal=principal, question_id=question_id)
    ask = session.get(RoutingAsk, (question_id, principal.user_id))
    if ask is None:
        raise Forbidden("only a person who was asked may decline")
    if ask.status == ANSWERED:
        raise Conflict("you answered this question; there is nothing to decline")
    if ask.status != DECLINED:
        ask.status, ask.responded_at, ask.decline_reason = DECLINED, at, reason
        session.add(ask)
        session.flush()
    return ask


def do_set_group_escalation(
    *, session: Session, principal: Principal, group_id: UUID, hours: float, at: datetime
) -> RoutingGroupSetting:
    """A group owner (or an admin) sets the group's delay; open questions are rescheduled."""
    group = session.get(SearchGroup, group_id)
    # A private group stays hidden from non-members, admins included (as in identity).
    visible = group is not None and (
        group.visibility != "private"
        or is_member(session=session, group_id=group_id, user_id=principal.user_id)
    )
    if group is None or not visible:
        raise NotFound("no such group")
    if group.owner_id != principal.user_id and not principal.is_admin:
        raise Forbidden("only the group's owner and administrators may set its escalation")
    setting = session.get(RoutingGroupSetting, group_id)
    if setting is None:
        setting = RoutingGroupSetting(
            group_id=group_id, escalation_hours=hours, changed_by=principal.user_id, changed_at=at
        )
    else:
        setting.escalation_hours, setting.changed_by, setting.changed_at = (
            hours,
            principal.user_id,
            at,
        )
    session.add(setting)
    waiting = session.exec(
        select(RoutingQuestion).where(
            RoutingQuestion.group_id == group_id,
            RoutingQuestion.status == OPEN,
            col(RoutingQuestion.next_round_at).is_not(None),
        )
    ).all()
    for question in waiting:
        question.next_round_at = question.last_routed_at + timedelta(hours=hours)
        session.add(question)
    session.flush()
    return setting
