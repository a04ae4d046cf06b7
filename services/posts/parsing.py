"""Hashtags and @mentions in text: the tags and handles a body refers to."""

import re
from collections.abc import Iterable

# A tag is what identity lets people follow: a letter or digit first, at most 50 in all.
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
# Not after a word character, '#', '&' or '/': skips "C#", "##", "&#39;" and URL fragments.
_HASHTAG = re.compile(r"(?<![\w#&/])#([a-z0-9][a-z0-9_-]{0,49})(?![\w-])", re.IGNORECASE)
# Not after a word character or '@': skips e-mail addresses and "@@".
_MENTION = re.compile(r"(?<![\w@])@([a-z0-9_]{2,32})(?!\w)", re.IGNORECASE)


def unique(values: Iterable[str]) -> list[str]:
    """The values in first-seen order, without repeats."""
    return list(dict.fromkeys(values))


def parse_tags(text: str) -> list[str]:
    """The #hashtags in `text`, lower-cased and unique, in order of appearance."""
    return unique(match.lower() for match in _HASHTAG.findall(text))


def parse_mentions(text: str) -> list[str]:
    """The @handles mentioned in `text`, lower-cased and unique, in order of appearance."""
    return unique(match.lower() for match in _MENTION.findall(text))


def normalise_tag(value: str) -> str:
    """A tag as given by a person ("#Python ") in its stored form ("python")."""
    return value.strip().removeprefix("#").lower()
