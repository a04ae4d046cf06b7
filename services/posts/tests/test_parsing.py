"""Hashtags and mentions parsed from text (pure)."""

import pytest

from services.posts.parsing import (
    MAX_MENTIONS,
    MAX_TAGS,
    normalise_tag,
    parse_mentions,
    parse_tags,
)


def test_tags_are_lower_cased_unique_and_in_order_of_appearance() -> None:
    text = "Moving to #Python 3.13 with #uv; #python is great, also #data-eng and #ml_ops"
    assert parse_tags(text) == ["python", "uv", "data-eng", "ml_ops"]


@pytest.mark.parametrize(
    "text",
    [
        "# Heading in markdown",
        "## Another heading",
        "C# is a language",
        "see https://example.com/page#section",
        "quote &#39; entity",
        "#-leading-dash",
        "#" + "a" * 51,
    ],
)
def test_things_that_only_look_like_hashtags_are_not_tags(text: str) -> None:
    assert parse_tags(text) == []


def test_tag_ends_at_punctuation() -> None:
    assert parse_tags("(#kubernetes), #helm. #go!") == ["kubernetes", "helm", "go"]


def test_mentions_are_handles_lower_cased_and_unique() -> None:
    text = "@Ada and @grace_h, thanks! cc @ada"
    assert parse_mentions(text) == ["ada", "grace_h"]


@pytest.mark.parametrize(
    "text",
    ["mail me at bob@example.com", "@a is too short", "@" + "x" * 33, "@@double"],
)
def test_email_addresses_and_invalid_handles_are_not_mentions(text: str) -> None:
    assert parse_mentions(text) == []


def test_mention_stops_at_a_character_handles_cannot_contain() -> None:
    assert parse_mentions("ping @linus-t about it") == ["linus"]


def test_given_tags_are_normalised_to_the_stored_form() -> None:
    assert normalise_tag("  #Python ") == "python"


def test_parsed_tags_and_mentions_keep_the_first_distinct_ones_up_to_the_cap() -> None:
    text = " ".join(f"#t{n} #t{n} @user{n}" for n in range(MAX_TAGS + 200))
    assert parse_tags(text) == [f"t{n}" for n in range(MAX_TAGS)]
    assert parse_mentions(text) == [f"user{n}" for n in range(MAX_MENTIONS)]
