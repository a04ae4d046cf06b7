"""The pure ranking rules: scores, the strongest reason, sections, caps and explanations."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from services.digests.ranking import Candidate, Match, Ranked, explain, rank, score, strongest_match
from shared.ids import new_id

UNTIL = datetime(2025, 6, 2, 12, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=1)


def candidate(
    *,
    kind: str = "post",
    hours_ago: float = 12,
    replies: int = 0,
    mentions_caller: bool = False,
    matches: tuple[Match, ...] = (Match("author", "bob"),),
    content_id: UUID | None = None,
) -> Candidate:
    return Candidate(
        content_id=content_id or new_id(),
        kind=kind,
        created_at=UNTIL - timedelta(hours=hours_ago),
        replies=replies,
        mentions_caller=mentions_caller,
        matches=matches,
    )


def test_article_scores_above_post_of_same_age() -> None:
    post = score(candidate(kind="post"), since=SINCE, until=UNTIL)
    article = score(candidate(kind="article"), since=SINCE, until=UNTIL)
    assert article - post == pytest.approx(2.0)


def test_newer_item_scores_above_older_one() -> None:
    newer = score(candidate(hours_ago=1), since=SINCE, until=UNTIL)
    older = score(candidate(hours_ago=23), since=SINCE, until=UNTIL)
    assert newer > older


def test_recency_is_clamped_to_the_window() -> None:
    # A thread started before the window (surfaced by replies) gets no recency credit.
    assert score(candidate(hours_ago=100), since=SINCE, until=UNTIL) == pytest.approx(1.0)
    assert score(candidate(hours_ago=0), since=SINCE, until=UNTIL) == pytest.approx(3.0)


def test_replies_boost_but_only_up_to_ten_count() -> None:
    base = score(candidate(), since=SINCE, until=UNTIL)
    assert score(candidate(replies=4), since=SINCE, until=UNTIL) == pytest.approx(base + 2.0)
    assert score(candidate(replies=50), since=SINCE, until=UNTIL) == pytest.approx(base + 5.0)


def test_mention_of_caller_outweighs_an_article() -> None:
    mentioned_post = score(candidate(mentions_caller=True), since=SINCE, until=UNTIL)
    article = score(candidate(kind="article"), since=SINCE, until=UNTIL)
    assert mentioned_post > article


def test_strongest_match_prefers_author_then_group_then_tag_then_reply() -> None:
    author, group, tag, reply = (
        Match("author", "u1"),
        Match("group", "g1"),
        Match("tag", "pkm"),
        Match("reply", "u2"),
    )
    assert strongest_match([reply, tag, group, author]) == author
    assert strongest_match([reply, tag, group]) == group
    assert strongest_match([reply, tag]) == tag
    assert strongest_match([reply]) == reply
    assert strongest_match([Match("tag", "b"), Match("tag", "a")]) == Match("tag", "b")


def test_strongest_match_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        strongest_match([])


def test_rank_puts_each_item_once_in_its_strongest_section() -> None:
    both = candidate(matches=(Match("tag", "pkm"), Match("author", "bob")))
    tag_only = candidate(matches=(Match("tag", "pkm"),))
    sections = rank([both, tag_only, both], since=SINCE, until=UNTIL)
    assert [(s.reason, s.key) for s in sections] == [("person", "bob"), ("tag", "pkm")]
    assert [r.candidate for r in sections[0].items] == [both]
    assert [r.candidate for r in sections[1].items] == [tag_only]


def test_rank_orders_sections_person_group_tag_and_items_by_score() -> None:
    old_post = candidate(hours_ago=20, matches=(Match("tag", "x"),))
    new_article = candidate(kind="article", hours_ago=2, matches=(Match("tag", "x"),))
    in_group = candidate(matches=(Match("group", "g"),))
    by_person = candidate(matches=(Match("reply", "carol"),))
    sections = rank([old_post, in_group, new_article, by_person], since=SINCE, until=UNTIL)
    assert [s.reason for s in sections] == ["person", "group", "tag"]
    assert [r.candidate for r in sections[2].items] == [new_article, old_post]


def test_rank_breaks_score_ties_by_recency_then_id() -> None:
    first = candidate(content_id=UUID(int=1))
    second = candidate(content_id=UUID(int=2))
    sections = rank([second, first], since=SINCE, until=UNTIL)
    assert [r.candidate for r in sections[0].items] == [first, second]


def test_rank_caps_each_section_and_counts_what_it_left_out() -> None:
    items = [candidate(hours_ago=hour) for hour in range(1, 13)]
    (section,) = rank(items, since=SINCE, until=UNTIL, cap=10)
    assert len(section.items) == 10
    assert section.omitted == 2
    assert [r.candidate for r in section.items] == items[:10]


def test_rank_skips_candidates_without_matches() -> None:
    assert rank([candidate(matches=())], since=SINCE, until=UNTIL) == []


def test_explain_says_why_in_words() -> None:
    ranked = Ranked(
        candidate(kind="article", replies=2, mentions_caller=True), Match("author", "b"), 9.0
    )
    why = explain(ranked, label="Bob (@bob)", period_word="in the day")
    assert why == "by Bob (@bob), whom you follow; an article; 2 replies in the day; mentions you"
    reply = Ranked(candidate(replies=1), Match("reply", "c"), 1.0)
    assert explain(reply, label="Carol (@carol)", period_word="in the week") == (
        "Carol (@carol), whom you follow, replied in this thread; 1 reply in the week"
    )
    assert explain(Ranked(candidate(), Match("tag", "x"), 1.0), label="#x").startswith(
        "tagged #x, which you follow"
    )
