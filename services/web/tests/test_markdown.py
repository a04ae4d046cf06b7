"""People's Markdown becomes HTML that can carry no script, with #tags and @people linked."""

from html.parser import HTMLParser

import pytest

from services.web.markdown import RenderedCache, render, sanitise


class Elements(HTMLParser):
    """Every element and its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


def test_markdown_becomes_html() -> None:
    html = render("# Title\n\nSome **bold** and `code`.\n\n- one\n- two\n\n###### Six")
    assert "<h2>Title</h2>" in html  # the page's own title is its one h1
    assert "<h6>Six</h6>" in html
    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert "<li>one</li>" in html


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "![x](javascript:alert(1))",
        '<iframe src="https://evil.example"></iframe>',
        "<svg onload=alert(1)>",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    ],
)
def test_no_markdown_or_html_in_a_body_can_run_script(source: str) -> None:
    elements = Elements()
    elements.feed(str(render(source)))
    for tag, attributes in elements.seen:
        assert tag not in {"script", "iframe", "svg", "object", "embed", "style"}, tag
        for name, value in attributes:
            assert not name.startswith("on"), (tag, name)
            if name in {"href", "src"}:
                assert (value or "").split(":", 1)[0].lower() in {"http", "https", "mailto"} or (
                    (value or "").startswith("/")
                ), (tag, name, value)


@pytest.mark.parametrize(
    "html",
    [
        "<p>ok</p><script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        '<img src="x" onerror="alert(1)">',
        '<p style="background:url(javascript:alert(1))">x</p>',
        '<iframe src="https://evil.example"></iframe>',
    ],
)
def test_whatever_the_renderer_might_let_through_the_sanitiser_removes(html: str) -> None:
    """The renderer already escapes raw HTML; the sanitiser must hold on its own too."""
    elements = Elements()
    elements.feed(sanitise(html))
    for tag, attributes in elements.seen:
        assert tag in {"p", "a", "img"}, tag
        for name, value in attributes:
            assert not name.startswith("on") and name != "style", (tag, name)
            assert "javascript" not in (value or ""), (tag, name, value)


def test_raw_html_is_shown_as_text() -> None:
    assert "&lt;b&gt;not bold&lt;/b&gt;" in render("<b>not bold</b>")


def test_links_from_people_carry_no_referrer_and_no_ranking_credit() -> None:
    html = render("[docs](https://example.org/docs)")
    assert 'href="https://example.org/docs"' in html
    assert 'rel="noopener noreferrer nofollow ugc"' in html


def test_hashtags_and_mentions_link_to_their_pages() -> None:
    html = render("Ask @Ada_L about #Kubernetes, not C# or a@b.example")
    assert '<a href="/people/@ada_l" class="mention"' in html or 'href="/people/@ada_l"' in html
    assert 'href="/tags/kubernetes"' in html
    assert html.count("<a ") == 2  # not "C#", not the e-mail address


def test_hashtags_in_code_and_in_links_stay_as_written() -> None:
    html = render("`#not-a-tag` and [#label](https://example.org) and\n\n    #indented-code")
    assert "/tags/" not in html


def test_the_rendered_cache_keeps_recent_bodies_within_its_size() -> None:
    cache = RenderedCache(max_chars=200)
    first = cache.get("*one*")
    assert cache.get("*one*") is first  # kept, not rendered again
    for number in range(20):
        cache.get(f"body number {number}")
    assert cache.chars <= 200
    assert "*one*" not in cache.entries  # the least recently used went first
    assert "body number 19" in cache.entries
