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

from services.search.engines.base import Deletion, IndexDoc, TextQuery
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


def text_query(query: TextQuery) -> dict[str, Any]:
    """Every word required, each in any of the text fields (term-centric, like FTS5)."""
    return {
        "multi_match": {
            "query": " ".join(query.terms),
            "type": "cross_fields",
            "operator": "and",
            "fields": TEXT_FIELDS,
        }
    }


def any_terms_query(terms: Sequence[str]) -> dict[str, Any]:
    """Any of the words, in any text field, scored by BM25 (expert candidates)."""
    return {
        "multi_match": {
            "query": " ".join(terms),
            "type": "cross_fields",
            "operator": "or",
            "fields": TEXT_FIELDS,
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
    }


def tombstone_of(deletion: Deletion) -> dict[str, Any]:
    return {"id": str(deletion.id), "version": deletion.version, "deleted": True}
