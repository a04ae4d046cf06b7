"""The expert formula (pure logic): topical match, kind, votes, acceptance, recency, speed."""

from datetime import timedelta
from uuid import UUID

from services.search.engines.base import Prior, Signals
from services.search.engines.expertise import (
    EVIDENCE_PER_PERSON,
    SKILL_WEIGHT,
    THANKS_CAP,
    Candidate,
    as_experts,
    quality,
    rank_experts,
    reference_time,
    weigh,
)
from shared.events.contracts import ContentKind
from shared.ids import new_id, utcnow

NOW = utcnow()


def candidate(
    author: UUID,
    kind: ContentKind = "answer",
    *,
    relevance: float = 1.0,
    age_days: float = 0,
    tags: tuple[str, ...] = (),
    thread: UUID | None = None,
) -> Candidate:
    return Candidate(
        content_id=new_id(),
        author_id=author,
        kind=kind,
        title=None,
        created_at=NOW - timedelta(days=age_days),
        relevance=relevance,
        tags=tags,
        thread_id=thread,
    )


def weight_of(item: Candidate, signals: Signals | None = None) -> float:
    (weighed,) = weigh(
        [item], query_tags=(), signals={item.content_id: signals or Signals()}, now=NOW
    )
    return weighed.weight


def ranked_ids(items: list[Candidate], **kwargs: object) -> list[UUID]:
    return [p.user_id for p in rank_experts(items, signals={}, now=NOW, limit=10, **kwargs)]  # type: ignore[arg-type]


def test_answering_weighs_most_then_replies_then_asking_then_commenting() -> None:
    author = new_id()
    kinds: tuple[ContentKind, ...] = ("answer", "article", "reply", "post", "question", "comment")
    weights = [weight_of(candidate(author, kind)) for kind in kinds]
    assert weights == [1.0, 1.0, 0.7, 0.35, 0.25, 0.2]


def test_the_engines_relevance_is_the_topical_match_relative_to_the_best_item() -> None:
    strong, weak = new_id(), new_id()
    items = [candidate(strong, relevance=8.0), candidate(weak, relevance=2.0)]
    weighed = weigh(items, query_tags=(), signals={}, now=NOW)
    assert [item.weight for item in weighed] == [1.0, 0.25]
    assert ranked_ids(items) == [strong, weak]


def test_an_answer_takes_its_threads_match_on_text_and_tags() -> None:
    asker, answerer = new_id(), new_id()
    question = candidate(asker, "question", relevance=4.0, tags=("plutus", "wallet"))
    answer = candidate(answerer, relevance=0.0, thread=question.content_id)
    weighed = weigh([question, answer], query_tags=("plutus",), signals={}, now=NOW)
    by_id = {item.candidate.content_id: item for item in weighed}
    assert by_id[answer.content_id].topical == 2.0  # text 1.0 + all query tags 1.0
    assert by_id[answer.content_id].tags == ("plutus",)
    assert by_id[answer.content_id].weight == 2.0
    assert "tags plutus" in by_id[answer.content_id].why


def test_acceptance_doubles_and_votes_add_with_diminishing_returns() -> None:
    assert quality(Signals()) == 1.0
    assert quality(Signals(accepted=True)) == 2.0
    assert quality(Signals(score=1)) == 1.5
    assert quality(Signals(score=3)) == 2.0
    assert quality(Signals(score=7)) == 2.5
    assert quality(Signals(score=-2)) == 0.5
    assert quality(Signals(thanks=THANKS_CAP + 50)) == quality(Signals(thanks=THANKS_CAP))


def test_a_well_received_answerer_outranks_one_with_the_same_unvoted_answer() -> None:
    plain, praised = sorted((new_id(), new_id()), key=str)
    items = [candidate(plain), candidate(praised)]
    signals = {items[1].content_id: Signals(score=3, accepted=True)}
    ranked = rank_experts(items, signals=signals, now=NOW, limit=10)
    assert [p.user_id for p in ranked] == [praised, plain]
    assert ranked[0].evidence[0].why.startswith("answer, accepted, +3 votes")
    assert "1 answer on the topic (1 accepted, +3 votes)" in ranked[0].why


def test_weight_halves_every_year_and_future_items_do_not_grow() -> None:
    author = new_id()
    assert abs(weight_of(candidate(author, age_days=365)) - 0.5) < 1e-9
    assert abs(weight_of(candidate(author, age_days=730)) - 0.25) < 1e-9
    assert weight_of(candidate(author, age_days=-10)) == 1.0


def test_answering_within_a_day_lifts_a_person_by_up_to_a_quarter() -> None:
    asker, fast, slow = new_id(), *sorted((new_id(), new_id()), key=str, reverse=True)
    first = candidate(asker, "question", age_days=10, relevance=1.0)
    second = candidate(asker, "question", age_days=10, relevance=1.0)
    items = [
        first,
        second,
        candidate(fast, age_days=9.5, thread=first.content_id),
        candidate(slow, age_days=5, thread=second.content_id),
    ]
    ranked = {p.user_id: p for p in rank_experts(items, signals={}, now=NOW, limit=10)}
    assert abs(ranked[fast].score / ranked[slow].score - 1.25 * 0.5 ** (4.5 / 365)) < 1e-6
    assert "1 of 1 answers within a day" in ranked[fast].why


def test_a_declared_skill_proposes_a_newcomer_but_below_real_evidence() -> None:
    veteran, newcomer = new_id(), new_id()
    items = [candidate(veteran, relevance=1.0)]
    priors = [Prior(user_id=newcomer, why="declares plutus", weight=SKILL_WEIGHT)]
    ranked = rank_experts(items, signals={}, now=NOW, limit=10, priors=priors)
    assert [p.user_id for p in ranked] == [veteran, newcomer]
    assert ranked[1].score == SKILL_WEIGHT and ranked[1].evidence == []
    assert ranked[1].why == "declares plutus"


def test_people_rank_by_summed_weight_with_ties_broken_by_user_id() -> None:
    one, two, three = sorted((new_id(), new_id(), new_id()), key=str)
    items = [candidate(three), candidate(three), candidate(two), candidate(one)]
    ranked = rank_experts(items, signals={}, now=NOW, limit=10)
    assert [person.user_id for person in ranked] == [three, one, two]
    assert [person.score for person in ranked] == [2.0, 1.0, 1.0]


def test_evidence_is_the_heaviest_items_first_and_capped() -> None:
    author = new_id()
    items = [candidate(author, age_days=days) for days in (300, 10, 200, 0, 100)]
    (person,) = rank_experts(items, signals={}, now=NOW, limit=5)
    assert len(person.evidence) == EVIDENCE_PER_PERSON
    weights = [item.weight for item in person.evidence]
    assert weights == sorted(weights, reverse=True)
    assert person.evidence[0].candidate.created_at == NOW


def test_years_old_evidence_still_ranks_people_instead_of_flattening_to_zero() -> None:
    """Regression: scores rounded to 4 places made every topic older than ~3.5 years
    score 0.0 and ranked people by user id (found on the Stack Exchange evaluation)."""
    veteran, newcomer = new_id(), new_id()
    items = [
        candidate(veteran, age_days=40 * 365),
        candidate(veteran, "reply", age_days=40 * 365),
        candidate(newcomer, "post", age_days=40 * 365 + 30),
    ]
    ranked = rank_experts(items, signals={}, now=NOW, limit=5)
    assert [person.user_id for person in ranked] == [veteran, newcomer]
    shown = as_experts(ranked, snippets={})
    assert shown[0].score > shown[1].score > 0


def test_the_limit_keeps_the_top_people() -> None:
    people = [new_id() for _ in range(5)]
    ranked = rank_experts([candidate(p) for p in people], signals={}, now=NOW, limit=2)
    assert len(ranked) == 2


def test_signals_for_items_that_are_not_candidates_are_never_read() -> None:
    author = new_id()
    visible = candidate(author)
    # e.g. a private item in a group the caller is not in: it was never a candidate.
    stray = {new_id(): Signals(score=50, accepted=True, thanks=10)}
    with_stray = rank_experts([visible], signals=stray, now=NOW, limit=10)
    without = rank_experts([visible], signals={}, now=NOW, limit=10)
    assert with_stray == without
    assert with_stray[0].thanks == 0


def test_a_persons_thanks_count_every_candidate_not_only_the_evidence_shown() -> None:
    author = new_id()
    items = [candidate(author) for _ in range(EVIDENCE_PER_PERSON + 2)]
    old = [candidate(author, age_days=900) for _ in range(2)]
    signals = {old[0].content_id: Signals(thanks=1), old[1].content_id: Signals(thanks=1)}
    (person,) = rank_experts([*items, *old], signals=signals, now=NOW, limit=1)
    assert person.thanks == 2


def test_people_answering_lately_on_any_topic_are_lifted_by_their_availability() -> None:
    idle, active = sorted((new_id(), new_id()), key=str)
    items = [candidate(idle), candidate(active)]
    ranked = rank_experts(items, signals={}, now=NOW, limit=10, recent_answers={active: 3})
    assert [p.user_id for p in ranked] == [active, idle]
    assert ranked[0].score == 3.0  # 1 + log2(1 + 3)
    assert "3 answers in the last 30 days" in ranked[0].why


def test_ages_count_from_the_topics_newest_evidence_not_the_wall_clock() -> None:
    author = new_id()
    items = [candidate(author, age_days=1000), candidate(author, age_days=1365)]
    assert reference_time(items, NOW) == items[0].created_at
    (person,) = rank_experts(items, signals={}, now=NOW, limit=1)
    assert abs(person.score - 1.5) < 1e-6  # 1 + 0.5: a year apart
    assert reference_time([candidate(author, age_days=-5)], NOW) == NOW
