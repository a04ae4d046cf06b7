"""The questions pages' pure logic: tags as typed, refusals by field, search snippets."""

from services.web.api import ApiError
from services.web.pages.base import parse_tags
from services.web.pages.questions import form_errors, plain, refusal


def test_tags_are_split_on_spaces_and_commas_without_hashes_or_repeats() -> None:
    assert parse_tags(" #kubernetes, deploys  Kubernetes,,#ci ") == ["kubernetes", "deploys", "ci"]
    assert parse_tags("") == []


def test_a_schema_refusal_is_shown_next_to_the_field_it_names() -> None:
    problem = {
        "errors": [
            {"loc": ["body", "body"], "msg": "Value error, must not be blank"},
            {"loc": ["body", "tags", 2], "msg": "a tag is letters, digits"},
            {"loc": ["body", "title"], "msg": "too long"},
            {"loc": ["body", "title"], "msg": "second message for the same field"},
        ]
    }
    refused = ApiError(422, "the request does not match the schema", problem)
    assert form_errors(refused) == {
        "body": "must not be blank",
        "tags": "a tag is letters, digits",
        "title": "too long",
    }
    assert refusal(refused) == "Check the fields marked below."


def test_a_refusal_without_fields_says_the_apis_detail() -> None:
    refused = ApiError(403, "voting on your own item", {"detail": "voting on your own item"})
    assert form_errors(refused) == {}
    assert refusal(refused) == "voting on your own item"


def test_a_snippet_becomes_plain_text_for_text_content() -> None:
    assert plain("a &lt;b&gt; <mark>match</mark> &amp; more") == "a <b> match & more"
