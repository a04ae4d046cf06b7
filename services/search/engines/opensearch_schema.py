"""OpenSearch index schema and document shapes for Knowflow content.

Explicit, strict mappings; one analyzer for all text matching the embedded engine's
tokenisation; the permission filter every query carries. Versions, tombstones and
rebuilds are the engine's business (`engines/opensearch.py`).
"""

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from opensearchpy import OpenSearch

from services.search.engines.base import Deletion, IndexDoc, SimilarQuery
from services.search.engines.highlight import clean

TEXT_FIELDS = ["title^10", "body", "tags.text^4"]

ANALYSIS = {
    "filter": {
        "knowflow_possessive": {"type": "stemmer", "language": "possessive_english"},
        "knowflow_porter": {"type": "stemmer", "language": "english"},
    },
    "analyzer": {
        "knowflow_text": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["knowflow_possessive", "lowercase", "asciifolding", "knowflow_porter"],
        }
    },
}
_KEYWORD = {"type": "keyword"}
_TEXT = {"type": "text", "analyzer": "knowflow_text"}
MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "version": {"type": "long"},
        "deleted": {"type": "boolean"},
        "kind": _KEYWORD,
        # The keyword subfield serves exact matches and sorting by title; bodies get none
        # (an exact match on a whole body is never asked for, and it would double the size).
        "title": {**_TEXT, "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
        "body": _TEXT,
        # No ignore_above on tags: a tag the index cannot hold fails loudly (dead letter).
        "tags": {**_KEYWORD, "fields": {"text": _TEXT}},
        "mentions": _KEYWORD,
        "author_id": _KEYWORD,
        "group_id": _KEYWORD,
        "visibility": _KEYWORD,
        "parent_id": _KEYWORD,
        "thread_id": _KEYWORD,
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
        # Questions only (absent elsewhere).
        "accepted_answer_id": _KEYWORD,
        "duplicate_of": _KEYWORD,
    },
}
INDEX_SETTINGS = {
    "number_of_shards": 1,
    # No replica on a single node (green), one as soon as a second node joins.
    "auto_expand_replicas": "0-1",
    "analysis": ANALYSIS,
}


# Weights as the embedded engine's bm25: title 10, body 1, tags 4.
def connect(url: str, *, timeout: float = 30.0) -> OpenSearch:
    """A client for the cluster at `url` (http(s)://host:port)."""
    return OpenSearch(hosts=[url], timeout=timeout, max_retries=2, retry_on_timeout=True)


def stamp(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def unstamp(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def any_term_query(terms: Sequence[str], *, boost: float = 1.0) -> dict[str, Any]:
    """Any of the words, each in any text field, scored by BM25 summed over the words.

    Term-centric (`cross_fields`), like FTS5's bm25 over weighted columns: a word found
    in the title counts as in the title, wherever the other words are.
    """
    return {
        "multi_match": {
            "query": " ".join(terms),
            "type": "cross_fields",
            "operator": "or",
            "fields": TEXT_FIELDS,
            "boost": boost,
        }
    }


# Similar questions: as the embedded engine's weights (see embedded.py).
SIMILAR_BODY_WEIGHT = 0.3
SIMILAR_TAG_BOOST = 0.2


def similar_query(draft: SimilarQuery, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """The draft's title words in full, its body words at a share, tags as a multiplier."""
    parts = []
    if draft.title_terms:
        parts.append(any_term_query(draft.title_terms))
    if draft.body_terms:
        parts.append(any_term_query(draft.body_terms, boost=SIMILAR_BODY_WEIGHT))
    # 1 + SIMILAR_TAG_BOOST per shared tag, multiplying the text score (never a match alone).
    functions: list[dict[str, Any]] = [{"weight": 1}]
    functions += [
        {"filter": {"term": {"tags": tag}}, "weight": SIMILAR_TAG_BOOST} for tag in draft.tags
    ]
    return {
        "function_score": {
            "query": {"bool": {"should": parts, "minimum_should_match": 1, "filter": filters}},
            "functions": functions,
            "score_mode": "sum",
            "boost_mode": "multiply",
        }
    }


def visible_to(principal_groups: Collection[UUID]) -> list[dict[str, Any]]:
    """The permission filter, applied inside every query: live, and public or in a group."""
    return [
        {"term": {"deleted": False}},
        {
            "bool": {
                "should": [
                    {"term": {"visibility": "public"}},
                    {"terms": {"group_id": sorted(str(group) for group in principal_groups)}},
                ],
                "minimum_should_match": 1,
            }
        },
    ]


def source_of(doc: IndexDoc) -> dict[str, Any]:
    return {
        "id": str(doc.id),
        "version": doc.version,
        "deleted": False,
        "kind": doc.kind,
        "title": clean(doc.title) if doc.title is not None else None,
        "body": clean(doc.body),
        "tags": sorted(set(doc.tags)),
        "mentions": list(doc.mentions),
        "author_id": str(doc.author_id),
        "group_id": str(doc.group_id) if doc.group_id else None,
        "visibility": doc.visibility,
        "parent_id": str(doc.parent_id) if doc.parent_id else None,
        "thread_id": str(doc.thread_id) if doc.thread_id else None,
        "created_at": stamp(doc.created_at),
        "updated_at": stamp(doc.updated_at),
        "accepted_answer_id": str(doc.accepted_answer_id) if doc.accepted_answer_id else None,
        "duplicate_of": str(doc.duplicate_of) if doc.duplicate_of else None,
    }


def tombstone_of(deletion: Deletion) -> dict[str, Any]:
    return {"id": str(deletion.id), "version": deletion.version, "deleted": True}
