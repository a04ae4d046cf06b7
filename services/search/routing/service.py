"""Routing's rules: who is asked about a question, why, when it escalates, and who may see it.

A question is ranked on what its asker may see *and* what every reader of the question may
see: a public question only on public evidence, a group's question on public and that
group's evidence. So the reason a person is given never reveals content they (or the asker)
may not read. People who may not read the question (a private group's non-members), the
asker, people already asked and people asked `max_asks_per_day` times in the last 24 hours
are never asked. Earlier declines of questions sharing a tag demote a person, and the
reason says so.

Rounds: 1 at creation (the best `people_per_round`), 2 after the group's escalation delay
(the next best not yet asked), 3 after another delay: the group's owner (a group's
question) or the followers of the question's tags (a public one). Then it stops. An
answer, deletion or close stops it at any point. Nothing here commits.
"""

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.search import service as search_service
from services.search.engines.base import SearchEngine, TextQuery, normalise_tag
from services.search.models import SearchGroup, SearchMembership, SearchUser
from services.search.routing.models import (
    RoutingAsk,
    RoutingGroupSetting,
    RoutingQuestion,
    RoutingRound,
    RoutingTagFollow,
)
from services.search.routing.settings import RoutingSettings
from shared.auth import Principal
from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.events.contracts import QuestionRouted, QuestionSnapshot, RoutedEvidence
from shared.events.outbox import record_event
from shared.ids import as_utc

SOURCE = "/knowflow/search/routing"
RANKED_ROUNDS = 2  # rounds 1 and 2 ask the ranked people; round 3 is the last resort
LAST_ROUND = 3
OPEN = "open"
ASKED, ANSWERED, DECLINED = "asked", "answered", "declined"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Pick:
    """A person to ask, why, and the evidence that shows it."""

    user_id: UUID
    reason: str
    evidence: list[RoutedEvidence]


@dataclass(frozen=True)
class RoundReport:
    question_id: UUID
    round: int
    asked: list[UUID]


# --- reading the question's audience ----------------------------------------------------


def is_member(*, session: Session, group_id: UUID, user_id: UUID) -> bool:
    row = session.get(SearchMembership, (group_id, user_id))
    return row is not None and row.is_member


def can_read(*, session: Session, question: RoutingQuestion, principal: Principal) -> bool:
    """Whether this person may read the question (a private group's: members and admins)."""
    if question.visibility != "private" or principal.is_admin:
        return True
    if question.group_id is None:
        return principal.user_id == question.asker_id
    return is_member(session=session, group_id=question.group_id, user_id=principal.user_id)


def readers_among(
    *, session: Session, question: RoutingQuestion, user_ids: Collection[UUID]
) -> set[UUID]:
    """Those of `user_ids` who may read the question."""
    if question.visibility != "private":
        return set(user_ids)
    if question.group_id is None or not user_ids:
        return set()
    query = select(SearchMembership.user_id).where(
        SearchMembership.group_id == question.group_id,
        col(SearchMembership.user_id).in_(list(user_ids)),
        col(SearchMembership.is_member).is_(True),
    )
    return set(session.exec(query).all())


def escalation_hours(
    *, session: Session, group_id: UUID | None, settings: RoutingSettings
) -> float:
    """The delay before a question's next round: its group's setting, else the default."""
    if group_id is not None:
        setting = session.get(RoutingGroupSetting, group_id)
        if setting is not None:
            return setting.escalation_hours
    return settings.escalation_hours


# --- ranking ---------------------------------------------------------------------------


def question_topics(question: RoutingQuestion) -> list[TextQuery]:
    """The question as asked, as topics for `find_experts`: its text, then each tag."""
    texts = [" ".join(part for part in (question.title, question.body) if part), *question.tags]
    topics = []
    for text in texts:
        # A text of symbols only has no words to rank on; the others still do.
        with suppress(BadRequest):
            topics.append(TextQuery.parse(text))
    return topics


def topic_label(question: RoutingQuestion) -> str:
    if question.tags:
        return ", ".join(f"#{tag}" for tag in question.tags[:3])
    return "this question's topic"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def explain(
    *, kinds: Counter[str], thanks: int, label: str, declines: int, declined_on: list[str]
) -> str:
    """The human reason: what the person wrote on the topic, and anything that demoted them."""
    written = ", ".join(_plural(count, kind) for kind, count in kinds.most_common())
    reason = f"you were asked because you wrote {written} on {label}"
    if thanks:
        reason += f", thanked {_plural(thanks, 'time')}"
    if declines:
        tags = ", ".join(f"#{tag}" for tag in declined_on[:3])
        reason += f" (ranked lower: you declined {_plural(declines, 'earlier question')} on {tags})"
    return reason


def count_declines(
    *, session: Session, user_ids: Collection[UUID], tags: Collection[str]
) -> dict[UUID, tuple[int, list[str]]]:
    """Per person: how many questions sharing one of `tags` they declined, and those tags."""
    if not user_ids or not tags:
        return {}
    wanted = set(tags)
    query = (
        select(RoutingAsk.user_id, RoutingQuestion.tags)
        .join(RoutingQuestion, col(RoutingQuestion.question_id) == col(RoutingAsk.question_id))
        .where(col(RoutingAsk.user_id).in_(list(user_ids)), RoutingAsk.status == DECLINED)
    )
    found: dict[UUID, tuple[int, list[str]]] = {}
    for user_id, question_tags in session.exec(query).all():
        shared_tags = [tag for tag in question_tags if tag in wanted]
        if shared_tags:
            count, seen = found.get(user_id, (0, []))
            found[user_id] = (count + 1, list(dict.fromkeys([*seen, *shared_tags])))
    return found


def asks_today(*, session: Session, user_ids: Collection[UUID], now: datetime) -> dict[UUID, int]:
    """How many times each person was asked in the 24 hours before `now`."""
    if not user_ids:
        return {}
    query = (
        select(RoutingAsk.user_id, func.count())
        .where(col(RoutingAsk.user_id).in_(list(user_ids)), RoutingAsk.routed_at > now - DAY)
        .group_by(col(RoutingAsk.user_id))
    )
    return {user_id: count for user_id, count in session.exec(query).all()}


def already_asked(*, session: Session, question_id: UUID) -> set[UUID]:
    query = select(RoutingAsk.user_id).where(RoutingAsk.question_id == question_id)
    return set(session.exec(query).all())


def eligible(
    *,
    session: Session,
    question: RoutingQuestion,
    user_ids: Sequence[UUID],
    now: datetime,
    settings: RoutingSettings,
) -> list[UUID]:
    """`user_ids` in order, without the asker, non-readers, people asked already or capped."""
    asked = already_asked(session=session, question_id=question.question_id)
    readers = readers_among(session=session, question=question, user_ids=user_ids)
    counts = asks_today(session=session, user_ids=user_ids, now=now)
    return [
        user_id
        for user_id in dict.fromkeys(user_ids)
        if user_id != question.asker_id
        and user_id in readers
        and user_id not in asked
        and counts.get(user_id, 0) < settings.max_asks_per_day
    ]


def rank_people(
    *,
    session: Session,
    engine: SearchEngine,
    question: RoutingQuestion,
    now: datetime,
    settings: RoutingSettings,
    limit: int,
) -> list[Pick]:
    """The best `limit` people to ask, ranked on evidence the asker and every reader may see."""
    asker = Principal(user_id=question.asker_id, handle="", is_admin=False)
    # The evidence's audience is the question's: a public question only public content.
    scope = [question.group_id] if question.group_id and question.visibility == "private" else []
    scores: dict[UUID, float] = defaultdict(float)
    thanks: dict[UUID, int] = defaultdict(int)
    evidence: dict[UUID, dict[UUID, tuple[float, RoutedEvidence]]] = defaultdict(dict)
    for topic in question_topics(question):
        ranked = search_service.find_experts(
            session=session,
            engine=engine,
            principal=asker,
            topic=topic,
            limit=settings.candidates,
            groups=scope,
        )
        for expert, _user in ranked:
            scores[expert.user_id] += expert.score
            thanks[expert.user_id] = max(thanks[expert.user_id], expert.thanks)
            for item in expert.evidence:
                if item.content_id == question.question_id:
                    continue
                why = f"your {item.kind} on {topic_label(question)}"
                if item.thanks:
                    why += f", thanked {_plural(item.thanks, 'time')}"
                known = evidence[expert.user_id].get(item.content_id)
                if known is None or known[0] < item.weight:
                    evidence[expert.user_id][item.content_id] = (
                        item.weight,
                        RoutedEvidence(
                            content_id=item.content_id, kind=item.kind, title=item.title, why=why
                        ),
                    )
    declines = count_declines(session=session, user_ids=list(scores), tags=question.tags)
    for user_id, (count, _tags) in declines.items():
        scores[user_id] *= settings.decline_factor**count
    order = sorted(scores, key=lambda user_id: (-scores[user_id], str(user_id)))
    picks = []
    for user_id in eligible(
        session=session, question=question, user_ids=order, now=now, settings=settings
    )[:limit]:
        items = sorted(evidence[user_id].values(), key=lambda pair: -pair[0])
        shown = [item for _weight, item in items[:3]]
        count, declined_on = declines.get(user_id, (0, []))
        reason = explain(
            kinds=Counter(item.kind for item in shown),
            thanks=thanks[user_id],
            label=topic_label(question),
            declines=count,
            declined_on=declined_on,
        )
        picks.append(Pick(user_id=user_id, reason=reason, evidence=shown))
    return picks


def last_resort(
    *, session: Session, question: RoutingQuestion, now: datetime, settings: RoutingSettings
) -> list[Pick]:
    """After two rounds: the group's owner, or the followers of the question's tags."""
    after = f"it is still unanswered after {RANKED_ROUNDS} rounds"
    if question.group_id is not None:
        group = session.get(SearchGroup, question.group_id)
        owners = [group.owner_id] if group else []
        name = group.name if group else "the group"
        chosen = eligible(
            session=session, question=question, user_ids=owners, now=now, settings=settings
        )
        reason = f"you were asked because you own {name} and {after}"
        return [Pick(user_id=user_id, reason=reason, evidence=[]) for user_id in chosen]
    follows = session.exec(
        select(RoutingTagFollow)
        .where(col(RoutingTagFollow.tag).in_(question.tags), col(RoutingTagFollow.active))
        .order_by(col(RoutingTagFollow.changed_at), col(RoutingTagFollow.follower_id))
    ).all()
    followed: dict[UUID, list[str]] = defaultdict(list)
    for follow in follows:
        followed[follow.follower_id].append(follow.tag)
    chosen = eligible(
        session=session, question=question, user_ids=list(followed), now=now, settings=settings
    )[: settings.last_round_people]
    return [
        Pick(
            user_id=user_id,
            reason=(
                "you were asked because you follow "
                + ", ".join(f"#{tag}" for tag in followed[user_id])
                + f" and {after}"
            ),
            evidence=[],
        )
        for user_id in chosen
    ]


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
) -> RoundReport | None:
    """Record a new question and ask the first round; a question seen before does nothing."""
    if session.get(RoutingQuestion, data.content_id) is not None:
        return None
    created_at = as_utc(data.created_at)
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
) -> RoundReport | None:
    """The question's next round if it is still open and due; otherwise nothing."""
    question = session.get(RoutingQuestion, question_id)
    if question is None or question.status != OPEN or question.next_round_at is None:
        return None
    if as_utc(question.next_round_at) > now or question.rounds >= LAST_ROUND:
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
    *, session: Session, question_id: UUID, author_id: UUID | None, at: datetime
) -> None:
    """An answer (or an acceptance) stops escalation; a routed author is marked answered."""
    question = session.get(RoutingQuestion, question_id)
    if question is None:
        return
    if question.status in (OPEN, "historic"):
        _stop(question, ANSWERED)
        session.add(question)
    if author_id is None:
        return
    ask = session.get(RoutingAsk, (question_id, author_id))
    if ask is not None and ask.status != ANSWERED:
        ask.status, ask.responded_at = ANSWERED, as_utc(at)
        session.add(ask)


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
    stored = as_utc(follow.changed_at)
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
        for user in session.exec(select(SearchUser).where(col(SearchUser.user_id).in_(ids))).all()
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
    visible = group is not None and (
        group.visibility != "private"
        or principal.is_admin
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
        question.next_round_at = as_utc(question.last_routed_at) + timedelta(hours=hours)
        session.add(question)
    session.flush()
    return setting
