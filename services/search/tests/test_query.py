"""Turning user text into engine-neutral words (pure logic)."""

import pytest

from services.search.engines.base import MAX_QUERY_TERMS, TextQuery, normalise_tag
from shared.errors import BadRequest


def test_only_words_survive_so_fts_syntax_cannot_reach_the_engine() -> None:
    query = TextQuery.parse('"NEAR(kubernetes* -pods) AND title:x^ {y}')
    assert query.terms == ("near", "kubernetes", "pods", "and", "title", "x", "y")


def test_words_are_lower_cased_and_deduplicated_in_order() -> None:
    assert TextQuery.parse("Rust rust RUST async").terms == ("rust", "async")


def test_unicode_letters_are_words_and_underscores_separate() -> None:
    assert TextQuery.parse("café naïve_über 東京").terms == ("café", "naïve", "über", "東京")


def test_text_without_words_is_a_bad_request() -> None:
    for text in ("", "   ", '""', "*-()", "___", "!!!"):
        with pytest.raises(BadRequest):
            TextQuery.parse(text)


def test_the_number_of_terms_is_capped() -> None:
    query = TextQuery.parse(" ".join(f"w{i}" for i in range(50)))
    assert len(query.terms) == MAX_QUERY_TERMS


def test_the_topic_as_a_tag_is_normalised() -> None:
    assert TextQuery.parse("  #Machine Learning ").tag == "machine-learning"
    assert normalise_tag("#K8s") == "k8s"
