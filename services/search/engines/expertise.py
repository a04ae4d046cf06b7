"""Who knows about a topic: the expert score, written once for every engine.

An engine finds the *candidates*: every item the caller may see that is on the topic,
where an item is on the topic when its text matches the topic's words, when it is
tagged with the topic, or when it is a reply in a thread whose root is on the topic
(an answer need not repeat the question's words). The service counts the "thanks"
each candidate received (from its own SQL projection, the same for every engine), and
this module scores them.

    weight(item) = KIND[kind] * MATCH[match] * 0.5 ** (age_days / HALF_LIFE_DAYS)
                   * (1 + THANKS_BONUS * min(thanks, THANKS_CAP))

    KIND   article 3.0, reply 2.0, post 1.0  — answering and writing up weigh more
    MATCH  tag 2.0, text 1.0                  — a reply inherits its thread's match if
                                                that is stronger than its own
    age    days from the item's creation to now (never negative); half-life 90 days
    thanks people who thanked the item's author for it; each adds half the item's
           weight, up to 10 (at most 6x), so a few grateful readers cannot buy a ranking

    score(person) = Σ weight over the person's candidates

Scores are compared at 9 significant digits (so summation order cannot break ties)
and shown at 4 significant digits — never rounded to decimal places, which would
flatten a topic whose evidence is all years old to zeros and rank it by user id.
    thanks(person) = Σ thanks over the person's candidates (shown, not capped)

People are ordered by score, then user id (so ties are stable); each shows their
`EVIDENCE_PER_PERSON` heaviest items (then newest, then id) with each item's thanks.
No relevance score from the engine enters the formula, so the ranking is
deterministic and explainable. Items the caller may not see cannot influence it: they
are never candidates, and thanks are only counted for candidates, so a thanks on a
private item moves nobody for a caller outside its group.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from services.search.engines.base import Evidence, Expert
from shared.events.contracts import ContentKind

HALF_LIFE_DAYS = 90.0
KIND_WEIGHT: dict[str, float] = {"article": 3.0, "reply": 2.0, "post": 1.0}
MATCH_WEIGHT: dict[str, float] = {"tag": 2.0, "text": 1.0}
EVIDENCE_PER_PERSON = 3
THANKS_BONUS = 0.5
THANKS_CAP = 10

Match = Literal["tag", "text"]


@dataclass(frozen=True)
class Candidate:
    """An item the caller may see that is on the topic, and how it matched."""

    content_id: UUID
    author_id: UUID
    kind: ContentKind
    title: str | None
    created_at: datetime
    match: Match


@dataclass(frozen=True)
class Weighed:
    """A candidate with its weight and the thanks that went into it."""

    candidate: Candidate
    weight: float
    thanks: int


@dataclass(frozen=True)
class RankedPerson:
    user_id: UUID
    score: float
    thanks: int  # on every candidate of theirs, not only the evidence shown
    evidence: list[Weighed]


def stronger(first: Match, second: Match) -> Match:
    """The stronger of two ways of matching."""
    return first if MATCH_WEIGHT[first] >= MATCH_WEIGHT[second] else second


def evidence_weight(candidate: Candidate, now: datetime, thanks: int = 0) -> float:
    """How much one item, thanked `thanks` times, says about its author's knowledge."""
    age_days = max((now - candidate.created_at).total_seconds(), 0.0) / 86_400
    decay = 0.5 ** (age_days / HALF_LIFE_DAYS)
    gratitude = 1 + THANKS_BONUS * min(max(thanks, 0), THANKS_CAP)
    return KIND_WEIGHT[candidate.kind] * MATCH_WEIGHT[candidate.match] * decay * gratitude


def rank_experts(
    candidates: Iterable[Candidate],
    *,
    thanks: Mapping[UUID, int],
    now: datetime,
    limit: int,
) -> list[RankedPerson]:
    """The top `limit` people by summed evidence weight, each with their heaviest items.

    `thanks` counts thanks per candidate id; only the candidates' entries are read.
    """
    by_person: dict[UUID, list[Weighed]] = defaultdict(list)
    for candidate in candidates:
        count = thanks.get(candidate.content_id, 0)
        by_person[candidate.author_id].append(
            Weighed(candidate, evidence_weight(candidate, now, count), count)
        )
    people = [
        RankedPerson(
            user_id=user_id,
            score=significant(sum(item.weight for item in items), 9),
            thanks=sum(item.thanks for item in items),
            evidence=sorted(
                items,
                key=lambda item: (
                    -item.weight,
                    -item.candidate.created_at.timestamp(),
                    str(item.candidate.content_id),
                ),
            )[:EVIDENCE_PER_PERSON],
        )
        for user_id, items in by_person.items()
    ]
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
            evidence=[
                Evidence(
                    content_id=item.candidate.content_id,
                    kind=item.candidate.kind,
                    title=item.candidate.title,
                    snippet=snippets.get(item.candidate.content_id, ""),
                    created_at=item.candidate.created_at,
                    weight=significant(item.weight, 4),
                    thanks=item.thanks,
                )
                for item in person.evidence
            ],
        )
        for person in ranked
    ]
