"""Search's snippets reach the page as text: only Knowflow's own <mark> is HTML."""

from services.web.pages.search import SearchForm, snippet_parts
from services.web.rendering import item_url, load_static, make_environment


def render_snippet(snippet: str) -> str:
    environment = make_environment(load_static())
    template = environment.from_string(
        '{% import "search/parts.html" as find %}{{ find.snippet(parts) }}'
    )
    return template.render(parts=snippet_parts(snippet))


def test_matches_are_marked_and_the_rest_is_text() -> None:
    assert snippet_parts("deploy <mark>canary</mark> builds") == [
        ("deploy ", False),
        ("canary", True),
        (" builds", False),
    ]
    assert render_snippet("deploy <mark>canary</mark> builds") == (
        '<p class="snippet">deploy <mark>canary</mark> builds</p>'
    )


def test_escaped_html_in_a_snippet_stays_text_escaped_once() -> None:
    snippet = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <mark>x</mark>"
    html = render_snippet(snippet)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <mark>x</mark>" in html


def test_markup_other_than_the_markers_is_never_html() -> None:
    # Whatever the API sent, only <mark> and </mark> are markers; anything else is text.
    html = render_snippet('<img src=x onerror="alert(1)"><mark>hit</mark><b>bold</b>')
    assert "<img" not in html and "<b>" not in html
    assert "&lt;img" in html and "<mark>hit</mark>" in html


def test_each_kind_links_to_the_page_that_shows_it() -> None:
    assert item_url("question", "q1") == "/questions/q1"
    assert item_url("article", "a1") == "/articles/a1"
    assert item_url("post", "p1") == "/posts/p1"
    assert item_url("answer", "a2", "q1") == "/questions/q1#answer-a2"
    assert item_url("answer", "a2") == "/answers/a2"
    assert item_url("reply", "r1") == "/posts/r1"
    assert item_url("reply", "r1", "p1") == "/posts/p1#post-r1"
    assert item_url("comment", "c1", "q1") == "/questions/q1#comment-c1"
    assert item_url("comment", "c1") is None


def test_dates_become_the_api_bounds_with_the_last_day_included() -> None:
    params, errors = SearchForm(q="x", since="2026-01-01", until="2026-01-31").checked()
    assert errors == {}
    assert params["since"] == "2026-01-01T00:00:00Z"
    assert params["until"] == "2026-02-01T00:00:00Z"


def test_filters_that_cannot_be_asked_are_field_errors() -> None:
    _params, errors = SearchForm(
        q="x", kind="poem", group_id="nope", since="yesterday", until=""
    ).checked()
    assert set(errors) == {"kind", "group_id", "since"}
    _params, errors = SearchForm(q="x", since="2026-02-01", until="2026-01-01").checked()
    assert set(errors) == {"until"}
