"""Who is asked about a question, and why: ranked people, or the last resort.

A question is ranked on what its asker may see *and* what every reader of the question may
see: a public question only on public evidence, a group's question on public and that
group's evidence. So the reason a person is given never reveals content they (or the asker)
may not read. People who may not read the question (a private group's non-members), the
asker, people already asked and people asked `max_asks_per_day` times in the last 24 hours
are never asked. Earlier declines of questions sharing a tag demote a person (each one
multiplies their score by `decline_factor`), and the reason says so.
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
from services.search.engines.base import ExpertQuery, SearchEngine
from services.search.models import SearchGroup, SearchMembership
from services.search.routing.models import RoutingAsk, RoutingQuestion, RoutingTagFollow
from services.search.routing.settings import RoutingSettings
from services.search.semantic.service import Semantic
from shared.auth import Principal
from shared.db import in_list
from shared.errors import BadRequest
from shared.events.contracts import RoutedEvidence

RANKED_ROUNDS = 2  # rounds 1 and 2 ask the ranked people; round 3 is the last resort
DECLINED = "declined"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Pick:
    """A person to ask, why, and the evidence that shows it."""

    user_id: UUID
    reason: str
    evidence: list[RoutedEvidence]


# --- reading the question's audience ----------------------------------------------------


def is_member(*, session: Session, group_id: UUID, user_id: UUID) -> bool:
    row = session.get(SearchMembership, (group_id, user_id))
    return row is not None and row.is_member


def can_read(*, session: Session, question: RoutingQuestion, principal: Principal) -> bool:
    """Whether this person may read the question (a private group's: its members only).

    As in posts, being an admin grants no access to a private group's content.
    """
    if question.visibility != "private":
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
        in_list(SearchMembership.user_id, user_ids),
        col(SearchMembership.is_member).is_(True),
    )
    return set(session.exec(query).all())


# --- ranking ---------------------------------------------------------------------------


def question_text(question: RoutingQuestion) -> str:
    return " ".join(part for part in (question.title, question.body) if part)


def question_query(question: RoutingQuestion) -> ExpertQuery | None:
    """The question as asked (title, body, tags, group) as one expert query; None if empty."""
    # A question of symbols only, without tags, has nothing to rank on.
    with suppress(BadRequest):
        return ExpertQuery.parse(question_text(question), question.tags, question.group_id)
    return None


def topic_label(question: RoutingQuestion) -> str:
    if question.tags:
        return ", ".join(f"#{tag}" for tag in question.tags[:3])
    return "this question's topic"


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


def _close(count: int) -> str:
    return f"{_plural(count, 'answer')} of yours {'is' if count == 1 else 'are'} close in meaning to it"


def explain(
    *,
    kinds: Counter[str],
    thanks: int,
    label: str,
    declines: int,
    declined_on: list[str],
    close: int = 0,
) -> str:
    """The human reason: what the person wrote on the topic, and anything that demoted them.

    `close`: how many of their answers are among the question's closest in meaning.
    """
    written = ", ".join(_plural(count, kind) for kind, count in kinds.most_common())
    if close and not written:  # found by meaning alone: the question is in other words
        reason = f"you were asked because {_close(close)}"
    else:
        reason = f"you were asked because you wrote {written or 'about'} on {label}"
        if close:
            reason += f" and {_close(close)}"
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
        .where(in_list(RoutingAsk.user_id, user_ids), RoutingAsk.status == DECLINED)
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
        .where(in_list(RoutingAsk.user_id, user_ids), RoutingAsk.routed_at > now - DAY)
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
    semantic: Semantic,
) -> list[Pick]:
    """The best `limit` people to ask, ranked on evidence the asker and every reader may see.

    With the embedding model on, meaning counts too (`search_service.find_experts`), on
    the same evidence: the question's title and body against the answers in its scope.
    """
    asker = Principal(user_id=question.asker_id, handle="", is_admin=False)
    # The evidence's audience is the question's: a public question only public content.
    scope = [question.group_id] if question.group_id and question.visibility == "private" else []
    scores: dict[UUID, float] = defaultdict(float)
    thanks: dict[UUID, int] = defaultdict(int)
    close: dict[UUID, int] = defaultdict(int)
    evidence: dict[UUID, dict[UUID, tuple[float, RoutedEvidence]]] = defaultdict(dict)
    query = question_query(question)
    ranked = (
        search_service.find_experts(
            session=session,
            engine=engine,
            principal=asker,
            topic=query,
            text=question_text(question),
            limit=settings.candidates,
            semantic=semantic,
            groups=scope,
        )
        if query is not None
        else []
    )
    for expert, _user in ranked:
        scores[expert.user_id] += expert.score
        close[expert.user_id] = max(close[expert.user_id], expert.close)
        thanks[expert.user_id] = max(thanks[expert.user_id], expert.thanks)
        for item in expert.evidence:
            if item.content_id == question.question_id:
                continue
            why = item.why or f"your {item.kind} on {topic_label(question)}"
            if item.thanks and not item.why:
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
            close=close[user_id],
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
        .where(in_list(RoutingTagFollow.tag, question.tags), col(RoutingTagFollow.active))
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
