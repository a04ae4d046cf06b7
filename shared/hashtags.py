"""What counts as a #hashtag and an @mention in text: one definition for the service that
parses them (posts) and the pages that link them (web)."""

import re

# A tag is what identity lets people follow: a letter or digit first, at most 50 in all.
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
# Not after a word character, '#', '&' or '/': skips "C#", "##", "&#39;" and URL fragments.
HASHTAG = re.compile(r"(?<![\w#&/])#([a-z0-9][a-z0-9_-]{0,49})(?![\w-])", re.IGNORECASE)
# Not after a word character or '@': skips e-mail addresses and "@@".
MENTION = re.compile(r"(?<![\w@])@([a-z0-9_]{2,32})(?!\w)", re.IGNORECASE)
