"""How a digest is ranked: pure functions over candidates, no database.

Each candidate matched one or more follows. It is shown once, under its strongest
match (the author you follow, then a group you follow, then a tag you follow, then a
followed person's reply in its thread). Within a section items are ordered by score:

    score = kind weight (article 3, post 1)
          + 0.5 per reply in the period (at most 10 counted)
          + 4 if the item or a reply in the period mentions you
          + up to 2 for recency (linear over the period: 2 at its end, 0 at its start)

Ties go to the newer item, then to the id, so the order is stable.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

Reason = Literal["person", "tag", "group"]
Via = Literal["author", "group", "tag", "reply"]

KIND_WEIGHT: Mapping[str, float] = {"article": 3.0, "post": 1.0}
REPLY_WEIGHT = 0.5
REPLIES_COUNTED = 10
MENTION_BOOST = 4.0
RECENCY_WEIGHT = 2.0
SECTION_CAP = 10

# Lower is stronger; also the order sections come in.
VIA_STRENGTH: Mapping[Via, int] = {"author": 0, "group": 1, "tag": 2, "reply": 3}
REASON_ORDER: Mapping[Reason, int] = {"person": 0, "group": 1, "tag": 2}
REASON_OF: Mapping[Via, Reason] = {
    "author": "person",
    "reply": "person",
    "group": "group",
    "tag": "tag",
}


# Slots: a round holds tens of thousands of these at once (without, a digest round's
# shared items alone grew the process by ~20 MB).
@dataclass(frozen=True, slots=True)
class Match:
    """One follow that brought an item in: how (`via`) and the followed key."""

    via: Via
    key: str

    @property
    def reason(self) -> Reason:
        return REASON_OF[self.via]


@dataclass(frozen=True, slots=True)
class Candidate:
    content_id: UUID
    kind: str
    created_at: datetime
    replies: int = 0
    mentions_caller: bool = False
    matches: tuple[Match, ...] = ()


@dataclass(frozen=True, slots=True)
class Ranked:
    candidate: Candidate
    match: Match
    score: float


@dataclass(slots=True)
class Section:
    reason: Reason
    key: str
    items: list[Ranked] = field(default_factory=list)
    omitted: int = 0


def score(candidate: Candidate, *, since: datetime, until: datetime) -> float:
    """The candidate's rank within its section (higher first)."""
    value = KIND_WEIGHT.get(candidate.kind, 1.0)
    value += REPLY_WEIGHT * min(candidate.replies, REPLIES_COUNTED)
    if candidate.mentions_caller:
        value += MENTION_BOOST
    span = (until - since).total_seconds()
    if span > 0:
        freshness = (candidate.created_at - since).total_seconds() / span
        value += RECENCY_WEIGHT * min(max(freshness, 0.0), 1.0)
    return round(value, 3)


def strongest_match(matches: Sequence[Match]) -> Match:
    """The match an item is shown under; the first of equally strong ones wins."""
    if not matches:
        raise ValueError("a candidate needs at least one match")
    return min(matches, key=lambda match: VIA_STRENGTH[match.via])


def order(score: float, candidate: Candidate) -> tuple[float, float, str]:
    """The order within a section: higher score first, then newer, then by id."""
    return (-score, -candidate.created_at.timestamp(), str(candidate.content_id))


def item_order(ranked: Ranked) -> tuple[float, float, str]:
    return order(ranked.score, ranked.candidate)


def section_order(section: Section) -> tuple[int, float, str]:
    """The order of sections: by reason (people, groups, tags), then best item, then key."""
    return (REASON_ORDER[section.reason], -section.items[0].score, section.key)


def rank(
    candidates: Sequence[Candidate],
    *,
    since: datetime,
    until: datetime,
    cap: int = SECTION_CAP,
) -> list[Section]:
    """Each candidate once, in the section of its strongest match, best first, capped."""
    sections: dict[tuple[Reason, str], Section] = {}
    seen: set[UUID] = set()
    for candidate in candidates:
        if candidate.content_id in seen or not candidate.matches:
            continue
        seen.add(candidate.content_id)
        match = strongest_match(candidate.matches)
        section = sections.setdefault(
            (match.reason, match.key), Section(reason=match.reason, key=match.key)
        )
        section.items.append(Ranked(candidate, match, score(candidate, since=since, until=until)))
    for section in sections.values():
        section.items.sort(key=item_order)
        section.omitted = max(len(section.items) - cap, 0)
        del section.items[cap:]
    return sorted(sections.values(), key=section_order)


def explain(ranked: Ranked, *, label: str, period_word: str = "today") -> str:
    """Why the item is in the digest, in words."""
    match, candidate = ranked.match, ranked.candidate
    if match.via == "author":
        parts = [f"by {label}, whom you follow"]
    elif match.via == "reply":
        parts = [f"{label}, whom you follow, replied in this thread"]
    elif match.via == "group":
        parts = [f"posted in {label}, a group you follow"]
    else:
        parts = [f"tagged {label}, which you follow"]
    if candidate.kind == "article":
        parts.append("an article")
    if candidate.replies:
        noun = "reply" if candidate.replies == 1 else "replies"
        parts.append(f"{candidate.replies} {noun} {period_word}")
    if candidate.mentions_caller:
        parts.append("mentions you")
    return "; ".join(parts)
