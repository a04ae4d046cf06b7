"""Hashtags and @mentions in text: the tags and handles a body refers to."""

from collections.abc import Iterable

from shared.hashtags import HASHTAG as _HASHTAG
from shared.hashtags import MENTION as _MENTION
from shared.hashtags import TAG_PATTERN

# Tags an item keeps (given and parsed together) and people it mentions. A body past
# the cap keeps its first ones: the text is still stored and searched in full, and a
# body full of "#fff" colours or "#1" headings is not refused for it.
MAX_TAGS = 50
MAX_MENTIONS = 50

__all__ = ["TAG_PATTERN", "normalise_tag", "parse_mentions", "parse_tags"]


def unique(values: Iterable[str], limit: int | None = None) -> list[str]:
    """The values in first-seen order, without repeats, at most `limit` of them."""
    seen: dict[str, None] = {}
    for value in values:
        if limit is not None and len(seen) >= limit:
            break
        seen.setdefault(value)
    return list(seen)


def parse_tags(text: str, limit: int = MAX_TAGS) -> list[str]:
    """The first `limit` #hashtags in `text`, lower-cased and unique, in order of appearance."""
    return unique((match.group(1).lower() for match in _HASHTAG.finditer(text)), limit)


def parse_mentions(text: str) -> list[str]:
    """The first @handles mentioned in `text`, lower-cased and unique, in order of appearance."""
    return unique((match.group(1).lower() for match in _MENTION.finditer(text)), MAX_MENTIONS)


def normalise_tag(value: str) -> str:
    """A tag as given by a person ("#Python ") in its stored form ("python")."""
    return value.strip().removeprefix("#").lower()
