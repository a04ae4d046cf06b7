"""The expert formula (pure logic): kind, match, recency, thanks, ordering, evidence."""

from datetime import timedelta
from uuid import UUID

from services.search.engines.expertise import (
    EVIDENCE_PER_PERSON,
    THANKS_CAP,
    Candidate,
    Match,
    as_experts,
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
        [candidate(three, "article"), candidate(two), candidate(one)],
        thanks={},
        now=NOW,
        limit=10,
    )
    assert [person.user_id for person in ranked] == [three, one, two]
    assert [person.score for person in ranked] == [3.0, 1.0, 1.0]


def test_evidence_is_the_heaviest_items_first_and_capped() -> None:
    author = new_id()
    items = [candidate(author, age_days=days) for days in (300, 10, 200, 0, 100)]
    items.append(candidate(author, "article", age_days=400))
    (person,) = rank_experts(items, thanks={}, now=NOW, limit=5)
    assert len(person.evidence) == EVIDENCE_PER_PERSON
    weights = [item.weight for item in person.evidence]
    assert weights == sorted(weights, reverse=True)
    assert person.evidence[0].candidate.created_at == NOW


def test_years_old_evidence_still_ranks_people_instead_of_flattening_to_zero() -> None:
    """Regression: scores rounded to 4 places made every topic older than ~3.5 years
    score 0.0 and ranked people by user id (found on the Stack Exchange evaluation)."""
    veteran, newcomer = new_id(), new_id()
    items = [
        candidate(veteran, "article", age_days=8 * 365),
        candidate(veteran, "reply", age_days=8 * 365),
        candidate(newcomer, "post", age_days=8 * 365 + 30),
    ]
    ranked = rank_experts(items, thanks={}, now=NOW, limit=5)
    assert [person.user_id for person in ranked] == [veteran, newcomer]
    assert ranked[1].score > 0
    shown = as_experts(ranked, snippets={})
    assert shown[0].score > shown[1].score > 0


def test_the_limit_keeps_the_top_people() -> None:
    people = [new_id() for _ in range(5)]
    ranked = rank_experts([candidate(p) for p in people], thanks={}, now=NOW, limit=2)
    assert len(ranked) == 2


def test_each_thanks_adds_half_the_weight_up_to_ten() -> None:
    item = candidate(new_id(), "reply", age_days=90)
    base = evidence_weight(item, NOW)
    assert abs(base - 1.0) < 1e-9  # a reply (2) at one half-life (0.5)
    assert abs(evidence_weight(item, NOW, thanks=1) - 1.5 * base) < 1e-9
    assert abs(evidence_weight(item, NOW, thanks=4) - 3.0 * base) < 1e-9
    capped = evidence_weight(item, NOW, thanks=THANKS_CAP)
    assert abs(capped - 6.0 * base) < 1e-9
    assert evidence_weight(item, NOW, thanks=THANKS_CAP + 50) == capped


def test_a_thanked_item_lifts_its_author_and_leads_their_evidence() -> None:
    # Without thanks the two are equal, and the tie goes to the smaller user id.
    unthanked, thanked = sorted((new_id(), new_id()), key=str)
    newer, answer = candidate(thanked, age_days=0), candidate(thanked, "reply", age_days=5)
    items = [
        newer,
        answer,
        candidate(unthanked, age_days=0),
        candidate(unthanked, "reply", age_days=5),
    ]
    assert [p.user_id for p in rank_experts(items, thanks={}, now=NOW, limit=10)] == [
        unthanked,
        thanked,
    ]

    ranked = rank_experts(items, thanks={answer.content_id: 2}, now=NOW, limit=10)

    assert [person.user_id for person in ranked] == [thanked, unthanked]
    top, other = ranked
    assert (top.thanks, other.thanks) == (2, 0)
    assert [item.candidate for item in top.evidence] == [answer, newer]
    assert [item.thanks for item in top.evidence] == [2, 0]
    assert abs(top.evidence[0].weight - 2 * other.evidence[0].weight) < 1e-9


def test_thanks_for_items_that_are_not_candidates_are_never_read() -> None:
    author = new_id()
    visible = candidate(author)
    # e.g. a private item in a group the caller is not in: it was never a candidate.
    invisible_id = new_id()
    with_stray = rank_experts([visible], thanks={invisible_id: 10}, now=NOW, limit=10)
    without = rank_experts([visible], thanks={}, now=NOW, limit=10)
    assert with_stray == without
    assert with_stray[0].thanks == 0


def test_a_persons_thanks_count_every_candidate_not_only_the_evidence_shown() -> None:
    author = new_id()
    items = [candidate(author) for _ in range(EVIDENCE_PER_PERSON + 2)]
    # Thank the lightest items: old ones.
    old = [candidate(author, age_days=900) for _ in range(2)]
    (person,) = rank_experts(
        [*items, *old], thanks={old[0].content_id: 1, old[1].content_id: 1}, now=NOW, limit=1
    )
    assert person.thanks == 2
