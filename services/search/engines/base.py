"""What every search engine takes and returns, and the interface it implements.

The service talks to an engine only through `SearchEngine` and these engine-neutral
types, so the embedded SQLite FTS5 engine and the OpenSearch engine are
interchangeable and held to the same behavioural tests. Every engine must:

- apply versions: an upsert or deletion older than what it holds is ignored, and a
  deletion leaves a tombstone (with its version) so a late upsert cannot resurrect it;
- filter by permission inside the query: a caller sees `public` items plus items of
  the groups in `principal_groups`, never a post-filtered page;
- count tags (autocomplete, a person's topics) only over what the caller may see;
- compute experts only over what the caller may see, with `expertise.rank_experts`,
  asking `signals` for the votes, acceptance and thanks of exactly those candidates
  (they live in the service's SQL projections, not in the index, so both engines score
  them alike), any word of the query matching, with the engine's relevance kept.
"""

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from shared.errors import BadRequest
from shared.events.contracts import ContentKind, Visibility

MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 16
# Words are runs of letters and digits; everything else (quotes, `*`, `-`, `(`) is a separator.
_WORD = re.compile(r"[^\W_]+")

# English function words, dropped from queries by both engines alike (the index keeps them:
# a query made only of them still searches for them). The Snowball English list without
# its contractions, plus "can", "will", "get" and "use": question phrasing, not topic. BM25's
# IDF already weighs them low, but left in, any-term matching would fetch and score nearly
# every document for "how do I ...", which is the cost and the noise we avoid.
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "get",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "use",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)


@dataclass(frozen=True)
class TextQuery:
    """User text reduced to plain words; engines match any of them, ranked by BM25."""

    terms: tuple[str, ...]
    tag: str  # the whole text as a tag, for "is this item tagged with the topic"

    @classmethod
    def parse(cls, text: str) -> "TextQuery":
        """The content words of `text` (its stop words if nothing else), or a 400 if none."""
        words = tuple(dict.fromkeys(word.lower() for word in _WORD.findall(text[:MAX_QUERY_CHARS])))
        if not words:
            raise BadRequest("the query has no words to search for")
        terms = tuple(word for word in words if word not in STOP_WORDS) or words
        return cls(terms=terms[:MAX_QUERY_TERMS], tag=normalise_tag(text[:MAX_QUERY_CHARS]))


def normalise_tag(tag: str) -> str:
    """Tags compare lower-case, without a leading '#', with spaces as '-'."""
    return "-".join(tag.strip().lower().removeprefix("#").split())


# A draft's body is long and mostly context: only its most frequent content words join
# the query, so a pasted log cannot make the query (or its cost) unbounded.
MAX_SIMILAR_BODY_TERMS = 20
MAX_SIMILAR_TITLE_CHARS = 300
MAX_SIMILAR_BODY_CHARS = 30_000


@dataclass(frozen=True)
class SimilarQuery:
    """A draft question as a query: its title's words, its body's salient words, its tags.

    Title words are the question as stated; body words are capped to the draft's
    `MAX_SIMILAR_BODY_TERMS` most frequent (ties: first seen) not already in the title;
    tags only boost. How each part weighs is the engines' `SIMILAR_*` weights.
    """

    title_terms: tuple[str, ...]
    body_terms: tuple[str, ...]
    tags: tuple[str, ...]
    group_id: UUID | None = None

    @classmethod
    def parse(
        cls,
        title: str,
        body: str | None = None,
        tags: Sequence[str] = (),
        group_id: UUID | None = None,
    ) -> "SimilarQuery":
        """The draft's query, or a 400 when neither title nor body has a word."""
        title_words = [w.lower() for w in _WORD.findall(title[:MAX_SIMILAR_TITLE_CHARS])]
        title_terms = tuple(dict.fromkeys(w for w in title_words if w not in STOP_WORDS)) or tuple(
            dict.fromkeys(title_words)
        )
        counts: dict[str, int] = {}
        for word in _WORD.findall((body or "")[:MAX_SIMILAR_BODY_CHARS]):
            word = word.lower()
            if word not in STOP_WORDS and word not in title_terms:
                counts[word] = counts.get(word, 0) + 1
        # sorted() is stable, so equal counts keep their first-seen order.
        body_terms = sorted(counts, key=lambda word: -counts[word])[:MAX_SIMILAR_BODY_TERMS]
        if not title_terms and not body_terms:
            raise BadRequest("the draft has no words to compare")
        return cls(
            title_terms=title_terms[:MAX_QUERY_TERMS],
            body_terms=tuple(body_terms),
            tags=tuple(dict.fromkeys(t for t in map(normalise_tag, tags) if t)),
            group_id=group_id,
        )


@dataclass(frozen=True)
class IndexDoc:
    """One piece of content as the index needs it: the whole current state and its version."""

    id: UUID
    version: int
    kind: ContentKind
    title: str | None
    body: str
    tags: tuple[str, ...]
    author_id: UUID
    group_id: UUID | None
    visibility: Visibility
    parent_id: UUID | None
    thread_id: UUID | None
    created_at: datetime
    updated_at: datetime
    mentions: tuple[str, ...] = ()
    # Questions only: the accepted answer and the question this one duplicates.
    accepted_answer_id: UUID | None = None
    duplicate_of: UUID | None = None


@dataclass(frozen=True)
class Deletion:
    """A deleted item; the version keeps an older upsert from bringing it back."""

    id: UUID
    version: int


@dataclass(frozen=True)
class SearchFilters:
    kind: ContentKind | None = None
    tag: str | None = None
    author_id: UUID | None = None
    group_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SearchHit:
    id: UUID
    kind: ContentKind
    title: str | None
    snippet: str  # HTML-escaped text with matches wrapped in <mark>…</mark>
    author_id: UUID
    group_id: UUID | None
    visibility: Visibility
    tags: tuple[str, ...]
    created_at: datetime
    score: float  # higher is more relevant; comparable within one query only
    has_accepted_answer: bool = False  # questions only
    duplicate_of: UUID | None = None  # questions only


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Evidence:
    content_id: UUID
    kind: ContentKind
    title: str | None
    snippet: str
    created_at: datetime
    weight: float
    thanks: int = 0
    score: int = 0  # votes
    accepted: bool = False
    why: str = ""


@dataclass(frozen=True)
class Expert:
    user_id: UUID
    score: float
    evidence: list[Evidence] = field(default_factory=list)
    thanks: int = 0  # on all their visible items on the topic
    why: str = ""  # every factor of the score, in words
    # How many of their visible answers are among the query's closest in meaning (0 when
    # semantic retrieval is off); see `expertise.with_meaning`.
    close: int = 0


@dataclass(frozen=True)
class TagCount:
    """A tag and how many visible items carry it (or, for a person, how many of theirs)."""

    tag: str
    count: int


@dataclass(frozen=True)
class Signals:
    """What readers did with an item: its vote score, whether it is accepted, its thanks."""

    score: int = 0
    accepted: bool = False
    thanks: int = 0


@dataclass(frozen=True)
class Prior:
    """Evidence about a person that is not content (a declared skill, a membership)."""

    user_id: UUID
    why: str
    weight: float


# Signals per item, for the given (visible, candidate) item ids; ids without any may be absent.
SignalsLookup = Callable[[Collection[UUID]], Mapping[UUID, Signals]]

# A person's topics are read from at most this many of their newest visible items.
TOPIC_ITEM_CAP = 1000

MAX_EXPERT_QUERY_CHARS = 4000
MAX_EXPERT_TERMS = 32
MAX_EXPERT_TAGS = 10


@dataclass(frozen=True)
class ExpertQuery:
    """What to find people for: words (any may match, ranked by relevance) and tags."""

    terms: tuple[str, ...]
    tags: tuple[str, ...] = ()
    group_id: UUID | None = None  # the question's group: its members are candidates too

    @classmethod
    def parse(
        cls, text: str = "", tags: Collection[str] = (), group_id: UUID | None = None
    ) -> "ExpertQuery":
        """Free text (a question's title and body) and tags, or a 400 when both are empty."""
        words = [word.lower() for word in _WORD.findall(text[:MAX_EXPERT_QUERY_CHARS])]
        terms = tuple(dict.fromkeys(w for w in words if w not in STOP_WORDS))
        if not terms:  # nothing but stop words: search for them rather than for nothing
            terms = tuple(dict.fromkeys(words))
        normalised = tuple(dict.fromkeys(t for t in map(normalise_tag, tags) if t))
        if not terms and not normalised:
            raise BadRequest("the query has no words or tags to search for")
        return cls(
            terms=terms[:MAX_EXPERT_TERMS], tags=normalised[:MAX_EXPERT_TAGS], group_id=group_id
        )

    @classmethod
    def of(cls, query: "ExpertQuery | TextQuery") -> "ExpertQuery":
        """A topic (a word or a tag, as `/experts?topic=` takes it) as an expert query."""
        if isinstance(query, ExpertQuery):
            return query
        return cls(terms=query.terms, tags=(query.tag,) if query.tag else ())


class SearchEngine(Protocol):
    """A content index bound to one unit of work (for the embedded engine, one transaction)."""

    def index(self, docs: Sequence[IndexDoc]) -> None:
        """Insert or replace documents, skipping any older than the stored version."""
        ...

    def delete(self, deletions: Sequence[Deletion]) -> None:
        """Remove documents and remember their version, skipping stale deletions."""
        ...

    def search(
        self,
        query: TextQuery,
        filters: SearchFilters,
        principal_groups: Collection[UUID],
        cursor: str | None,
        limit: int,
        *,
        snippets: bool = True,
    ) -> SearchPage:
        """One page of visible matches, best first; `next_cursor` continues after it.

        Without `snippets` the hits' snippets are empty (a ranking only, for a caller
        that shows a part of it through `hits_for`)."""
        ...

    def similar_questions(
        self, draft: SimilarQuery, principal_groups: Collection[UUID], limit: int
    ) -> list[SearchHit]:
        """Visible questions most like the draft, best first (public and the draft's group)."""
        ...

    def hits_for(
        self,
        ids: Collection[UUID],
        terms: Sequence[str],
        filters: SearchFilters,
        principal_groups: Collection[UUID],
        *,
        snippets: bool = True,
    ) -> list[SearchHit]:
        """Those of `ids` that are visible and pass `filters`, with snippets that highlight
        `terms` where they match (the body's opening otherwise; none without `snippets`);
        scores are 0, order free.
        Semantic retrieval finds items by meaning; this shows them like any other hit."""
        ...

    def experts(
        self,
        query: ExpertQuery,
        principal_groups: Collection[UUID],
        limit: int,
        *,
        signals: SignalsLookup,
        priors: Sequence[Prior] = (),
        person: UUID | None = None,
    ) -> list[Expert]:
        """People ranked by visible evidence on the query, and priors (see `expertise`).

        `person` keeps only that person's entry, scored exactly as among everyone.
        """
        ...

    def tag_counts(
        self, prefix: str, principal_groups: Collection[UUID], limit: int
    ) -> list[TagCount]:
        """Tags starting with `prefix` on visible items, most used first, then by name."""
        ...

    def authored_topics(
        self, author_id: UUID, principal_groups: Collection[UUID], limit: int
    ) -> list[TagCount]:
        """Tags on a person's visible items or on the visible threads they answered in.

        Each count is of the person's items (at most the newest `TOPIC_ITEM_CAP`) carrying
        the tag or sitting in a thread that does; most first, then by name.
        """
        ...


class RebuildInProgress(Exception):
    """Another rebuild holds the rebuild alias (OpenSearch)."""
