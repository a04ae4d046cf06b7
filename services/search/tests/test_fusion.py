"""Fusing the keyword and the dense ranking (pure logic)."""

import pytest

from services.search.semantic.fusion import DENSE_WEIGHT, fuse, normalise_minmax, normalise_zscore

KEYWORD = [("k1", 12.0), ("both", 7.5), ("k2", 3.0), ("k3", 1.0)]
DENSE = [("d1", 0.81), ("d2", 0.64), ("both", 0.52), ("d3", 0.30)]


def keys(ranking: list[tuple[str, float]]) -> list[str]:
    return [key for key, _ in ranking]


def test_a_document_both_lists_found_ranks_above_one_found_by_one_list_alone() -> None:
    # "x" and "y" have the same dense score; only "x" is also a keyword hit.
    keyword = [("w", 9.0), ("x", 5.0), ("v", 1.0)]
    dense = [("y", 0.8), ("x", 0.8), ("z", 0.2)]
    assert keys(fuse(keyword, dense, limit=10, weight=0.5)).index("x") == 0


def test_a_document_at_the_bottom_of_the_other_list_still_beats_one_that_list_missed() -> None:
    # "x" is the keyword list's worst (normalised 0, as a missing document); it still wins
    # the tie against "y", found by the dense list alone.
    keyword = [("w", 9.0), ("x", 1.0)]
    dense = [("y", 0.8), ("x", 0.8), ("z", 0.2)]
    fused = fuse(keyword, dense, limit=10, weight=0.5, normalise=normalise_minmax)
    assert dict(fused)["x"] == dict(fused)["y"]
    assert keys(fused).index("x") < keys(fused).index("y")


def test_on_equal_fused_scores_the_document_both_lists_found_goes_first() -> None:
    # "k" (keyword alone) comes first in the keyword list, "x" (both) reaches the same
    # fused score with its dense half: the tie goes to "x".
    keyword = [("k", 9.0), ("x", 5.0), ("low", 1.0)]
    dense = [("top", 0.75), ("x", 0.5), ("bottom", 0.25)]
    fused = fuse(keyword, dense, limit=10, weight=0.5, normalise=normalise_minmax)
    assert dict(fused)["x"] == dict(fused)["k"] == 0.5
    assert keys(fused)[:3] == ["x", "k", "top"]


def test_weight_zero_keeps_the_keyword_order_and_weight_one_the_dense_order() -> None:
    by_keyword = keys(fuse(KEYWORD, DENSE, limit=20, weight=0.0))
    assert by_keyword[: len(KEYWORD)] == keys(KEYWORD)
    by_dense = keys(fuse(KEYWORD, DENSE, limit=20, weight=1.0))
    assert by_dense[: len(DENSE)] == keys(DENSE)
    assert sorted(by_keyword) == sorted(by_dense) == sorted(set(keys(KEYWORD) + keys(DENSE)))


def test_scores_are_the_convex_combination_of_standard_scores_missing_counting_as_worst() -> None:
    fused = dict(fuse(KEYWORD, DENSE, limit=20, weight=0.25))
    keyword, keyword_floor = normalise_zscore([score for _, score in KEYWORD])
    dense, dense_floor = normalise_zscore([score for _, score in DENSE])
    assert fused["k1"] == pytest.approx(0.75 * keyword[0] + 0.25 * dense_floor)
    assert fused["d1"] == pytest.approx(0.75 * keyword_floor + 0.25 * dense[0])
    assert fused["both"] == pytest.approx(0.75 * keyword[1] + 0.25 * dense[2])
    assert keyword_floor == min(keyword) and dense_floor == min(dense)


def test_min_max_normalisation_is_bounded_and_a_missing_document_scores_zero() -> None:
    fused = dict(fuse(KEYWORD, DENSE, limit=20, weight=0.25, normalise=normalise_minmax))
    assert fused["k1"] == pytest.approx(0.75)
    assert fused["d1"] == pytest.approx(0.25)
    both_keyword = (7.5 - 1.0) / (12.0 - 1.0)
    both_dense = (0.52 - 0.30) / (0.81 - 0.30)
    assert fused["both"] == pytest.approx(0.75 * both_keyword + 0.25 * both_dense)
    assert all(0.0 <= score <= 1.0 for score in fused.values())


def test_empty_lists_give_the_other_list_or_nothing() -> None:
    assert fuse([], [], limit=10) == []
    assert keys(fuse(KEYWORD, [], limit=10)) == keys(KEYWORD)
    assert keys(fuse([], DENSE, limit=10)) == keys(DENSE)
    assert fuse([], DENSE, limit=10, weight=0.0)[0] == ("d1", 0.0)


def test_a_list_of_one_puts_its_document_a_standard_deviation_above_the_missing() -> None:
    assert normalise_zscore([4.2]) == ([0.0], -1.0)
    assert normalise_zscore([3.0, 3.0]) == ([0.0, 0.0], -1.0)
    assert normalise_minmax([4.2]) == ([1.0], 0.0)
    fused = dict(fuse([("only", 4.2)], DENSE, limit=10, weight=0.5))
    _, dense_floor = normalise_zscore([score for _, score in DENSE])
    assert fused["only"] == pytest.approx(0.5 * 0.0 + 0.5 * dense_floor)
    assert fused["d3"] == pytest.approx(0.5 * -1.0 + 0.5 * dense_floor)


def test_ties_go_to_the_heavier_list_s_order_then_the_other_s_whatever_the_keys() -> None:
    keyword = [("zeta", 2.0), ("alpha", 2.0)]
    dense = [("omega", 0.4), ("beta", 0.4)]
    assert keys(fuse(keyword, dense, limit=10, weight=0.5)) == ["zeta", "alpha", "omega", "beta"]
    assert keys(fuse(keyword[::-1], dense[::-1], limit=10, weight=0.5)) == [
        "alpha",
        "zeta",
        "beta",
        "omega",
    ]
    assert keys(fuse(keyword, dense, limit=10, weight=0.75)) == ["omega", "beta", "zeta", "alpha"]


def test_the_limit_caps_the_list_and_a_repeated_key_counts_once() -> None:
    assert len(fuse(KEYWORD, DENSE, limit=3)) == 3
    assert fuse(KEYWORD, DENSE, limit=0) == []
    repeated = fuse([("a", 3.0), ("a", 1.0), ("b", 2.0)], [], limit=10)
    assert repeated == [
        ("a", pytest.approx(1 - DENSE_WEIGHT)),
        ("b", pytest.approx(DENSE_WEIGHT - 1)),
    ]


def test_a_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="weight"):
        fuse(KEYWORD, DENSE, limit=10, weight=1.5)
