"""Who knows about a topic: the expert score, written once for every engine.

An engine finds the *candidates*: every item the caller may see that is on the topic,
where an item is on the topic when its text matches the topic's words, when it is
tagged with the topic, or when it is a reply in a thread whose root is on the topic
(an answer need not repeat the question's words). This module scores them.

    weight(item) = KIND[kind] * MATCH[match] * 0.5 ** (age_days / HALF_LIFE_DAYS)

    KIND   article 3.0, reply 2.0, post 1.0  — answering and writing up weigh more
    MATCH  tag 2.0, text 1.0                  — a reply inherits its thread's match if
                                                that is stronger than its own
    age    days from the item's creation to now (never negative); half-life 90 days

    score(person) = Σ weight over the person's candidates, rounded to 4 places

People are ordered by score, then user id (so ties are stable); each shows their
`EVIDENCE_PER_PERSON` heaviest items (then newest, then id). No relevance score from
the engine enters the formula, so the ranking is deterministic and explainable, and
items the caller may not see cannot influence it (they are never candidates).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared.events.contracts import ContentKind

HALF_LIFE_DAYS = 90.0
KIND_WEIGHT: dict[str, float] = {"article": 3.0, "reply": 2.0, "post": 1.0}
MATCH_WEIGHT: dict[str, float] = {"tag": 2.0, "text": 1.0}
EVIDENCE_PER_PERSON = 3

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
class RankedPerson:
    user_id: UUID
    score: float
    evidence: list[tuple[Candidate, float]]


def stronger(first: Match, second: Match) -> Match:
    """The stronger of two ways of matching."""
    return first if MATCH_WEIGHT[first] >= MATCH_WEIGHT[second] else second


def evidence_weight(candidate: Candidate, now: datetime) -> float:
    """How much one item says about its author's knowledge of the topic."""
    age_days = max((now - candidate.created_at).total_seconds(), 0.0) / 86_400
    decay = 0.5 ** (age_days / HALF_LIFE_DAYS)
    return KIND_WEIGHT[candidate.kind] * MATCH_WEIGHT[candidate.match] * decay


def rank_experts(
    candidates: Iterable[Candidate], *, now: datetime, limit: int
) -> list[RankedPerson]:
    """The top `limit` people by summed evidence weight, each with their heaviest items."""
    by_person: dict[UUID, list[tuple[Candidate, float]]] = defaultdict(list)
    for candidate in candidates:
        by_person[candidate.author_id].append((candidate, evidence_weight(candidate, now)))
    people = [
        RankedPerson(
            user_id=user_id,
            score=round(sum(weight for _, weight in items), 4),
            evidence=sorted(
                items,
                key=lambda item: (
                    -item[1],
                    -item[0].created_at.timestamp(),
                    str(item[0].content_id),
                ),
            )[:EVIDENCE_PER_PERSON],
        )
        for user_id, items in by_person.items()
    ]
    people.sort(key=lambda person: (-person.score, str(person.user_id)))
    return people[:limit]
