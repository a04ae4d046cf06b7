"""People's Markdown as HTML: rendered by markdown-it-py, then sanitised by nh3 (ammonia).

Raw HTML in the source is not rendered (it shows as text), and whatever the renderer
makes passes an allow-list anyway: the only place text from people becomes HTML.
#hashtags and @mentions in text (not in code or links) become links to the tag's and
the person's pages, by the same patterns the posts service parses them with.
"""

from collections import OrderedDict
from functools import lru_cache
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markupsafe import Markup

from shared.hashtags import HASHTAG, MENTION

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "img", "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
}
# Links from people's text: no referrer, no ranking credit, no window.opener.
LINK_REL = "noopener noreferrer nofollow ugc"
URL_SCHEMES = {"http", "https", "mailto"}


def _link_tags_and_mentions(state: StateCore) -> None:
    """Split text tokens around #tags and @mentions into links (outside links and code)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        inside_link = 0
        for token in block.children:
            if token.type == "link_open":
                inside_link += 1
            elif token.type == "link_close":
                inside_link -= 1
            if (
                token.type != "text"
                or inside_link
                or ("#" not in token.content and "@" not in token.content)
            ):
                children.append(token)
                continue
            children.extend(_split(token.content))
        block.children = children


def _demote_headings(state: StateCore) -> None:
    """A person's `# Heading` is an h2: the page's one h1 is its own title."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close") and token.tag != "h6":
            token.tag = f"h{int(token.tag[1]) + 1}"


def _split(text: str) -> list[Token]:
    matches = sorted(
        [
            (m.start(), m.end(), f"/tags/{quote(m.group(1).lower())}", "tag")
            for m in HASHTAG.finditer(text)
        ]
        + [
            (m.start(), m.end(), f"/people/@{quote(m.group(1).lower())}", "mention")
            for m in MENTION.finditer(text)
        ]
    )
    tokens: list[Token] = []
    position = 0
    for start, end, href, kind in matches:
        if start < position:
            continue
        if start > position:
            tokens.append(_text(text[position:start]))
        opening = Token("link_open", "a", 1)
        opening.attrs = {"href": href, "class": kind}
        tokens += [opening, _text(text[start:end]), Token("link_close", "a", -1)]
        position = end
    if position < len(text):
        tokens.append(_text(text[position:]))
    return tokens


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    renderer = MarkdownIt("commonmark", {"html": False, "typographer": False})
    renderer.enable(["table", "strikethrough"])
    renderer.core.ruler.push("knowflow_links", _link_tags_and_mentions)
    renderer.core.ruler.push("knowflow_headings", _demote_headings)
    return renderer


def render(source: str | None) -> Markup:
    """Markdown from a person, as HTML safe to put in a page."""
    if not source:
        return Markup("")
    return _RENDERED.get(source)


class RenderedCache:
    """Bodies as rendered, least recently used dropped first, bounded by their size: the
    same questions and answers are read far more often than written, and rendering a long
    answer costs milliseconds."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.entries: OrderedDict[str, Markup] = OrderedDict()

    def get(self, source: str) -> Markup:
        html = self.entries.get(source)
        if html is not None:
            self.entries.move_to_end(source)
            return html
        html = _render(source)
        self.entries[source] = html
        self.chars += len(source) + len(html)
        while self.chars > self.max_chars and self.entries:
            dropped, dropped_html = self.entries.popitem(last=False)
            self.chars -= len(dropped) + len(dropped_html)
        return html


# About 16 million characters of source and HTML together: a few tens of MB at most.
_RENDERED = RenderedCache(max_chars=16_000_000)


def _render(source: str) -> Markup:
    # Sanitised just below: the only Markup made from people's text.
    return Markup(sanitise(_renderer().render(source)))


def sanitise(html: str) -> str:
    """HTML reduced to the allow-list: the second line of defence after the renderer."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
    )
