"""The reason a person is given reads as English and says what demoted them (pure logic)."""

from collections import Counter

from services.search.routing.ranking import explain


def test_a_reason_counts_what_the_person_wrote_in_plain_english() -> None:
    reason = explain(
        kinds=Counter({"reply": 2, "article": 1}),
        thanks=1,
        label="#plutus",
        declines=0,
        declined_on=[],
    )
    assert (
        reason == "you were asked because you wrote 2 replies, 1 article on #plutus, thanked 1 time"
    )


def test_a_reason_says_when_earlier_declines_ranked_the_person_lower() -> None:
    reason = explain(
        kinds=Counter({"post": 1}), thanks=0, label="#a, #b", declines=2, declined_on=["a"]
    )
    assert reason == (
        "you were asked because you wrote 1 post on #a, #b"
        " (ranked lower: you declined 2 earlier questions on #a)"
    )
