"""Snippets every engine renders alike: user text HTML-escaped, matches in <mark>.

Engines mark matches with two control characters (stripped from content when it is
indexed, so content cannot forge a highlight), then `render` escapes the text and
turns the markers into elements.
"""

import html

OPEN, CLOSE = "\x02", "\x03"
PLAIN_SNIPPET_CHARS = 160


def clean(value: str) -> str:
    """Content without the match markers."""
    return value.replace(OPEN, "").replace(CLOSE, "")


def render(marked: str) -> str:
    """Escape user text as HTML and turn the match markers into <mark> elements."""
    return html.escape(marked).replace(OPEN, "<mark>").replace(CLOSE, "</mark>")


def plain_snippet(body: str) -> str:
    """The body's opening, escaped, for items whose body does not match."""
    if len(body) <= PLAIN_SNIPPET_CHARS:
        return html.escape(body)
    cut = body[:PLAIN_SNIPPET_CHARS].rsplit(" ", 1)[0]
    return html.escape(cut) + "…"
