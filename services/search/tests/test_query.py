"""Turning user text into engine-neutral words (pure logic)."""

import pytest

from services.search.engines.base import MAX_QUERY_TERMS, STOP_WORDS, TextQuery, normalise_tag
from shared.errors import BadRequest


def test_only_words_survive_so_fts_syntax_cannot_reach_the_engine() -> None:
    query = TextQuery.parse('"NEAR(kubernetes* -pods) AND title:x^ {y}')
    assert query.terms == ("near", "kubernetes", "pods", "title", "x", "y")


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


def test_stop_words_are_dropped_so_a_question_searches_for_its_content_words() -> None:
    query = TextQuery.parse("How do I stake my ADA with a pool?")
    assert query.terms == ("stake", "ada", "pool")


def test_a_query_of_stop_words_only_keeps_them_rather_than_failing() -> None:
    assert TextQuery.parse("to be or not to be").terms == ("to", "be", "or", "not")


def test_stop_words_are_lower_case_words_as_the_parser_sees_them() -> None:
    assert all(word == word.lower() and word.isalnum() for word in STOP_WORDS)
