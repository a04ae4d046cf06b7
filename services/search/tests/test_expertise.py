"""The expert formula (pure logic): kind, match, recency, ordering, evidence."""

from datetime import timedelta
from uuid import UUID

from services.search.engines.expertise import (
    EVIDENCE_PER_PERSON,
    Candidate,
    Match,
    evidence_weight,
    rank_experts,
)
from shared.events.contracts import ContentKind
from shared.ids import new_id, utcnow

NOW = utcnow()


def candidate(
    author: UUID, kind: ContentKind = "post", match: Match = "text", age_days: float = 0
) -> Candidate:
    return Candidate(
        content_id=new_id(),
        author_id=author,
        kind=kind,
        title=None,
        created_at=NOW - timedelta(days=age_days),
        match=match,
    )


def test_articles_weigh_most_then_replies_then_posts() -> None:
    author = new_id()
    kinds: tuple[ContentKind, ...] = ("article", "reply", "post")
    weights = [evidence_weight(candidate(author, kind), NOW) for kind in kinds]
    assert weights == [3.0, 2.0, 1.0]


def test_a_tag_match_weighs_twice_a_text_match() -> None:
    author = new_id()
    assert evidence_weight(candidate(author, match="tag"), NOW) == 2.0


def test_weight_halves_every_ninety_days_and_future_items_do_not_grow() -> None:
    author = new_id()
    assert abs(evidence_weight(candidate(author, age_days=90), NOW) - 0.5) < 1e-9
    assert abs(evidence_weight(candidate(author, age_days=180), NOW) - 0.25) < 1e-9
    assert evidence_weight(candidate(author, age_days=-10), NOW) == 1.0


def test_people_rank_by_summed_weight_with_ties_broken_by_user_id() -> None:
    one, two, three = sorted((new_id(), new_id(), new_id()), key=str)
    ranked = rank_experts(
        [candidate(three, "article"), candidate(two), candidate(one)], now=NOW, limit=10
    )
    assert [person.user_id for person in ranked] == [three, one, two]
    assert [person.score for person in ranked] == [3.0, 1.0, 1.0]


def test_evidence_is_the_heaviest_items_first_and_capped() -> None:
    author = new_id()
    items = [candidate(author, age_days=days) for days in (300, 10, 200, 0, 100)]
    items.append(candidate(author, "article", age_days=400))
    (person,) = rank_experts(items, now=NOW, limit=5)
    assert len(person.evidence) == EVIDENCE_PER_PERSON
    weights = [weight for _, weight in person.evidence]
    assert weights == sorted(weights, reverse=True)
    assert person.evidence[0][0].created_at == NOW
    assert round(person.score, 4) == person.score


def test_the_limit_keeps_the_top_people() -> None:
    people = [new_id() for _ in range(5)]
    ranked = rank_experts([candidate(p) for p in people], now=NOW, limit=2)
    assert len(ranked) == 2
