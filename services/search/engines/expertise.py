"""Who is likely to answer: the expert score, written once for every engine.

The literature on routing questions in community Q&A (profile-based expert finding,
Balog et al. 2006; Zhou et al. 2012; Riahi et al. 2012; Srba & Bielikova 2016) finds the
strongest signal is the topical match of a person's past answers to the new question,
then their reputation and acceptance, then how recently and how fast they answer. The
score follows that order, factor by factor, and every factor is shown in the evidence.

An engine finds the *candidates*: items the caller may see that match any word of the
query (ranked retrieval, BM25: the engine's relevance is kept as `relevance`), items
tagged with any of the query's tags, and every answer, comment or reply in the thread
of such an item (an answer need not repeat the question's words). The service looks up
each candidate's signals (votes, acceptance, thanks: SQL projections, the same for
every engine) and the priors of people with little history (declared skills, membership
of the question's group), and this module scores them.

    topical(item) = TEXT * relevance / max relevance of the query       (0..1 each)
                  + TAG  * share of the query's tags on the item's thread
                  an answer/comment takes the stronger of its own and its thread's
    quality(item) = (1 + ACCEPTED_BONUS if accepted)
                  * (1 + VOTE_BONUS * log2(1 + score))  (score < 0: NEGATIVE_FACTOR)
                  * (1 + THANKS_BONUS * log2(1 + min(thanks, THANKS_CAP)))
    recency(item) = 0.5 ** (age_days / HALF_LIFE_DAYS)
    weight(item)  = KIND[kind] * topical * quality * recency

    score(person) = (1 + SPEED_BONUS * share of their answers given within a day)
                  * (1 + log2(1 + answers they gave in the last ACTIVE_DAYS, on any topic))
                  * Σ weight  +  Σ priors (SKILL_WEIGHT per declared skill on the query,
                                           MEMBER_WEIGHT for a member of the question's group)

Ages are measured from the topic's latest evidence (the newest candidate, never later
than now), so a replay of past data scores as it would have then, and a topic's experts
do not all fade together while nobody writes about it. Availability (recent answers on
any topic, Li & King 2010) says who is around to answer now.

Kinds: answering is the behaviour to predict (answer, article 1.0; a reply to a post
0.7); asking (question 0.25, post 0.35) and commenting (0.2) show engagement, not yet
knowledge. Votes count with diminishing returns (log), so a few popular answers cannot
outweigh many on the topic; a half-life of a year keeps old knowledge while favouring
the currently active. A prior is worth half of one plain on-topic answer: it ranks people
with little history, never above someone with real evidence.

Meaning (issue 12, with the embedding model on; `with_meaning`, applied by the service
after the engine's ranking, so it is the same for every engine): the same topical match,
judged by meaning rather than shared words. A person's affinity is the mean cosine of
their `MEANING_TOP` visible answers closest to the question (title + body, or the topic);
it multiplies their score, it does not add to it:

    closeness(person) = (affinity - MIN_SIMILARITY) / (best affinity - MIN_SIMILARITY)
                        clipped to 0..1 (the best among the people considered is 1)
    score(person)    *= 1 + MEANING_BONUS * closeness

A factor, not a term, because meaning is another view of the topical match the score
already sums, not new evidence of quality or availability: a prolific answerer whose
answers are about something else is not made an expert by one near sentence, and the
factor is bounded (at most doubles), so it reorders people with evidence rather than
replacing it. Below `MIN_SIMILARITY` two texts are not about the same thing (measured for
hybrid search), so such affinity is no evidence at all. Normalising by the best person,
as text relevance is normalised by the best item, keeps the factor model-neutral (each
model has its own cosine scale). People with no keyword candidate at all but answers
among the question's closest in meaning (it is asked in other words) are let in with
`MEANING_WEIGHT` (a prior's worth) times the same factor: found, but ranked below
people with real keyword evidence unless theirs is slight.

Scores are compared at 9 significant digits (so summation order cannot break ties) and
shown at 4 significant digits. People are ordered by score, then user id; each shows
their `EVIDENCE_PER_PERSON` heaviest items. Items the caller may not see cannot
influence it: they are never candidates, and signals are only looked up for candidates.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID

from services.search.engines.base import Evidence, Expert, Prior, Signals
from shared.events.contracts import ContentKind

HALF_LIFE_DAYS = 365.0
KIND_WEIGHT: dict[str, float] = {
    "answer": 1.0,
    "article": 1.0,
    "reply": 0.7,
    "post": 0.35,
    "question": 0.25,
    "comment": 0.2,
}
ROOT_KINDS = frozenset({"question", "post", "article"})
ANSWER_KINDS = frozenset({"answer", "reply"})
TEXT_WEIGHT = 1.0
TAG_WEIGHT = 1.0
ACCEPTED_BONUS = 1.0
VOTE_BONUS = 0.5
NEGATIVE_FACTOR = 0.5
THANKS_BONUS = 0.5
THANKS_CAP = 10
SPEED_BONUS = 0.25
ACTIVE_DAYS = 30
FAST_SECONDS = 86_400.0
SKILL_WEIGHT = 0.5
MEMBER_WEIGHT = 0.25
EVIDENCE_PER_PERSON = 3
MEANING_BONUS = 1.0  # the closest person's score is doubled, as TEXT/TAG weigh a full match
MEANING_WEIGHT = SKILL_WEIGHT  # a person found by meaning alone starts where a prior does
MEANING_TOP = 3  # a person's affinity: the mean of their closest answers
MEANING_KINDS = ("answer", "article", "reply")  # what shows knowledge (not asking)


@dataclass(frozen=True)
class Candidate:
    """An item the caller may see that is on the topic, with what the engine knows of it."""

    content_id: UUID
    author_id: UUID
    kind: ContentKind
    title: str | None
    created_at: datetime
    relevance: float = 0.0  # the engine's text relevance (BM25), 0 when the text did not match
    tags: tuple[str, ...] = ()
    thread_id: UUID | None = None


@dataclass(frozen=True)
class Weighed:
    """A candidate with its weight and the factors that went into it."""

    candidate: Candidate
    weight: float
    signals: Signals
    topical: float
    text: float  # normalised relevance of the item or its thread
    tags: tuple[str, ...]  # the query's tags on the item's thread
    why: str


@dataclass(frozen=True)
class RankedPerson:
    user_id: UUID
    score: float
    thanks: int  # on every candidate of theirs, not only the evidence shown
    evidence: list[Weighed]
    why: str
    priors: list[Prior] = field(default_factory=list)


def quality(signals: Signals) -> float:
    """How much readers' votes, acceptance and thanks say the item was good."""
    accepted = 1 + ACCEPTED_BONUS if signals.accepted else 1.0
    votes = NEGATIVE_FACTOR if signals.score < 0 else 1 + VOTE_BONUS * math.log2(1 + signals.score)
    thanks = 1 + THANKS_BONUS * math.log2(1 + min(max(signals.thanks, 0), THANKS_CAP))
    return accepted * votes * thanks


def recency(created_at: datetime, now: datetime) -> float:
    age_days = max((now - created_at).total_seconds(), 0.0) / 86_400
    return float(0.5 ** (age_days / HALF_LIFE_DAYS))


def _describe(kind: str, signals: Signals, text: float, tags: Sequence[str]) -> str:
    parts = [kind]
    if signals.accepted:
        parts.append("accepted")
    if signals.score:
        parts.append(f"{signals.score:+d} votes")
    if signals.thanks:
        parts.append(f"{signals.thanks} thanks")
    matched = []
    if text > 0:
        matched.append(f"text match {text:.2f}")
    if tags:
        matched.append("tags " + ", ".join(tags))
    return ", ".join(parts) + ("; " + ", ".join(matched) if matched else "")


def weigh(
    candidates: Sequence[Candidate],
    *,
    query_tags: Sequence[str],
    signals: Mapping[UUID, Signals],
    now: datetime,
) -> list[Weighed]:
    """Each candidate's weight; answers and comments inherit their thread's match."""
    top = max((c.relevance for c in candidates), default=0.0)
    wanted = set(query_tags)

    def own(candidate: Candidate) -> tuple[float, tuple[str, ...]]:
        text = candidate.relevance / top if top > 0 else 0.0
        tags = tuple(sorted(wanted.intersection(candidate.tags)))
        return text, tags

    def topical(text: float, tags: Sequence[str]) -> float:
        share = len(tags) / len(wanted) if wanted else 0.0
        return TEXT_WEIGHT * text + TAG_WEIGHT * share

    roots = {c.content_id: own(c) for c in candidates if c.kind in ROOT_KINDS}
    weighed = []
    for candidate in candidates:
        text, tags = own(candidate)
        inherited = roots.get(candidate.thread_id) if candidate.thread_id else None
        if inherited is not None and topical(*inherited) > topical(text, tags):
            text, tags = inherited
        item = signals.get(candidate.content_id, Signals())
        match = topical(text, tags)
        weight = (
            KIND_WEIGHT.get(candidate.kind, 0.2)
            * match
            * quality(item)
            * recency(candidate.created_at, now)
        )
        weighed.append(
            Weighed(
                candidate=candidate,
                weight=weight,
                signals=item,
                topical=match,
                text=text,
                tags=tags,
                why=_describe(candidate.kind, item, text, tags),
            )
        )
    return weighed


def fast_share(items: Sequence[Weighed], asked_at: Mapping[UUID, datetime]) -> tuple[int, int]:
    """(answers given within a day of their question, answers whose question time is known)."""
    fast = known = 0
    for item in items:
        candidate = item.candidate
        asked = asked_at.get(candidate.thread_id) if candidate.thread_id else None
        if candidate.kind not in ANSWER_KINDS or asked is None:
            continue
        known += 1
        delay = (candidate.created_at - asked).total_seconds()
        fast += delay <= FAST_SECONDS
    return fast, known


def _summary(
    items: Sequence[Weighed], fast: int, known: int, active: int, priors: Sequence[Prior]
) -> str:
    answers = [
        i for i in items if i.candidate.kind in ANSWER_KINDS or i.candidate.kind == "article"
    ]
    parts = []
    if answers:
        accepted = sum(1 for i in answers if i.signals.accepted)
        votes = sum(i.signals.score for i in answers)
        parts.append(
            f"{len(answers)} answer{'s' if len(answers) != 1 else ''} on the topic"
            + (f" ({accepted} accepted, {votes:+d} votes)" if accepted or votes else "")
        )
    asked = sum(1 for i in items if i.candidate.kind in ("question", "post"))
    if asked:
        parts.append(f"asked {asked} question{'s' if asked != 1 else ''} on it")
    commented = sum(1 for i in items if i.candidate.kind == "comment")
    if commented:
        parts.append(f"{commented} comment{'s' if commented != 1 else ''}")
    if known:
        parts.append(f"{fast} of {known} answers within a day")
    if active:
        parts.append(f"{active} answer{'s' if active != 1 else ''} in the last {ACTIVE_DAYS} days")
    parts += [prior.why for prior in priors]
    return "; ".join(parts)


def reference_time(candidates: Iterable[Candidate], now: datetime) -> datetime:
    """When the topic last had evidence (never later than now): what ages are counted from."""
    return min(max((c.created_at for c in candidates), default=now), now)


def active_since(reference: datetime) -> datetime:
    """The start of the window whose answers count as availability."""
    return reference - timedelta(days=ACTIVE_DAYS)


def rank_experts(
    candidates: Iterable[Candidate],
    *,
    signals: Mapping[UUID, Signals],
    now: datetime,
    limit: int,
    query_tags: Sequence[str] = (),
    priors: Sequence[Prior] = (),
    recent_answers: Mapping[UUID, int] | None = None,
    only: UUID | None = None,
) -> list[RankedPerson]:
    """The top `limit` people by score (see the module), each with their heaviest items.

    `signals` holds votes, acceptance and thanks per candidate id; only the candidates'
    entries are read. `recent_answers` counts each person's visible answers since
    `active_since(reference_time(candidates, now))`. `only` keeps that one person: a
    person's score depends on the other candidates (the reference time, the top
    relevance) but not on the other people, so it is the score they have among everyone.
    """
    listed = list(candidates)
    recent = recent_answers or {}
    weighed = weigh(listed, query_tags=query_tags, signals=signals, now=reference_time(listed, now))
    asked_at = {c.content_id: c.created_at for c in listed if c.kind in ROOT_KINDS}
    by_person: dict[UUID, list[Weighed]] = defaultdict(list)
    for item in weighed:
        by_person[item.candidate.author_id].append(item)
    priors_of: dict[UUID, list[Prior]] = defaultdict(list)
    for prior in priors:
        priors_of[prior.user_id].append(prior)
    people = []
    for user_id in set(by_person) | set(priors_of):
        if only is not None and user_id != only:
            continue
        items = by_person.get(user_id, [])
        fast, known = fast_share(items, asked_at)
        speed = 1 + SPEED_BONUS * (fast / known if known else 0.0)
        active = recent.get(user_id, 0)
        total = speed * (1 + math.log2(1 + active)) * sum(item.weight for item in items)
        total += sum(prior.weight for prior in priors_of.get(user_id, []))
        if total <= 0:
            continue
        people.append(
            RankedPerson(
                user_id=user_id,
                score=significant(total, 9),
                thanks=sum(item.signals.thanks for item in items),
                evidence=sorted(
                    items,
                    key=lambda item: (
                        -item.weight,
                        -item.candidate.created_at.timestamp(),
                        str(item.candidate.content_id),
                    ),
                )[:EVIDENCE_PER_PERSON],
                why=_summary(items, fast, known, active, priors_of.get(user_id, [])),
                priors=priors_of.get(user_id, []),
            )
        )
    people.sort(key=lambda person: (-person.score, str(person.user_id)))
    return people[:limit]


def significant(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def as_experts(ranked: Iterable[RankedPerson], snippets: Mapping[UUID, str]) -> list[Expert]:
    """The engine-neutral result, with each evidence item's snippet by content id."""
    return [
        Expert(
            user_id=person.user_id,
            score=significant(person.score, 4),
            thanks=person.thanks,
            why=person.why,
            evidence=[
                Evidence(
                    content_id=item.candidate.content_id,
                    kind=item.candidate.kind,
                    title=item.candidate.title,
                    snippet=snippets.get(item.candidate.content_id, ""),
                    created_at=item.candidate.created_at,
                    weight=significant(item.weight, 4),
                    thanks=item.signals.thanks,
                    score=item.signals.score,
                    accepted=item.signals.accepted,
                    why=item.why,
                )
                for item in person.evidence
            ],
        )
        for person in ranked
    ]


def meaning_factor(affinity: float, best: float, floor: float) -> float:
    """1 + MEANING_BONUS * closeness (see the module): 1 for no affinity, at most 2."""
    if best <= floor or affinity <= floor:
        return 1.0
    return 1 + MEANING_BONUS * min((affinity - floor) / (best - floor), 1.0)


def _close_why(close: int, affinity: float, factor: float) -> str:
    if close:
        answers = "answer" if close == 1 else "answers"
        return f"close in meaning to {close} of your {answers} (similarity {affinity:.2f}, score +{factor - 1:.0%})"
    return f"answers near in meaning (similarity {affinity:.2f}, score +{factor - 1:.0%})"


def with_meaning(
    experts: Sequence[Expert],
    affinity: Mapping[UUID, float],
    close: Mapping[UUID, int],
    *,
    floor: float,
    limit: int,
) -> list[Expert]:
    """The top `limit` people once meaning counts (see the module).

    `experts` are the engine's ranking; `affinity` each person's affinity (over items the
    caller may see); `close` how many of each person's visible answers are among the
    query's closest (these people may be absent from `experts`: they are let in).
    """
    best = max(affinity.values(), default=0.0)
    ranked = []
    for expert in experts:
        value = affinity.get(expert.user_id, 0.0)
        factor = meaning_factor(value, best, floor)
        if factor == 1.0:
            ranked.append(expert)
            continue
        count = close.get(expert.user_id, 0)
        why = "; ".join(part for part in (expert.why, _close_why(count, value, factor)) if part)
        ranked.append(
            replace(expert, score=significant(expert.score * factor, 4), why=why, close=count)
        )
    known = {expert.user_id for expert in experts}
    for user_id, count in close.items():
        value = affinity.get(user_id, 0.0)
        factor = meaning_factor(value, best, floor)
        if user_id in known or factor == 1.0:
            continue
        ranked.append(
            Expert(
                user_id=user_id,
                score=significant(MEANING_WEIGHT * factor, 4),
                why=_close_why(count, value, factor),
                close=count,
            )
        )
    ranked.sort(key=lambda expert: (-expert.score, str(expert.user_id)))
    return ranked[:limit]
