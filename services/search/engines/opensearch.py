"""The OpenSearch engine: the production index, same behaviour as the embedded one.

Index: the alias `<prefix>-content` names one concrete index `<prefix>-content-<utc
timestamp>`, created at start-up when missing, with explicit mappings (`dynamic:
strict`, so a field we did not plan is an error, never a silent new mapping). Text
(title, body, tags.text) goes through one analyzer (standard tokenizer, possessive,
lower case, ASCII folding, Porter stemming, like the embedded engine's
`porter unicode61 remove_diacritics`; stop words are kept in the index and dropped from
queries by `TextQuery`, one list for both engines, so "and or not" is still searchable);
identifiers, kind, visibility, tags and mentions are keywords; dates are dates.

Versions: every write is an index operation with external versioning on the event's
content `version`. An upsert uses `external` (must be newer), a deletion `external_gte`
(at equal versions deletion wins, as in the embedded engine). A version conflict means
the index already holds something as new: the event is done, not failed.

Tombstones: a deletion replaces the document by a tombstone, `{id, version,
deleted: true}` without any content, instead of an OpenSearch delete. A real delete
keeps its version only for `index.gc_deletes` (60 s), after which a late, older create
would bring the item back; a tombstone keeps its version for ever (they are small;
`purge_tombstones` is left for when that matters). Every query filters
`deleted: false`.

Writes go through the aliases with `require_alias`, so a write can never auto-create
an index. During a rebuild (`begin_rebuild` … `finish_rebuild`) a second alias,
`<prefix>-content-rebuild`, names the new index, and every bulk request writes each
operation through both aliases; external versions make the order in which the copy
and live events reach the new index irrelevant.
"""

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, RequestError

from services.search.engines.base import (
    TOPIC_ITEM_CAP,
    Deletion,
    Expert,
    ExpertQuery,
    IndexDoc,
    Prior,
    RebuildInProgress,
    SearchFilters,
    SearchHit,
    SearchPage,
    SignalsLookup,
    SimilarQuery,
    TagCount,
    TextQuery,
)
from services.search.engines.expertise import (
    Candidate,
    active_since,
    as_experts,
    rank_experts,
    reference_time,
)
from services.search.engines.highlight import CLOSE, OPEN, plain_snippet, render
from services.search.engines.opensearch_schema import (
    INDEX_SETTINGS,
    MAPPINGS,
    any_term_query,
    similar_query,
    source_of,
    stamp,
    tombstone_of,
    unstamp,
    visible_to,
)
from shared.errors import BadRequest
from shared.events.failures import DependencyUnavailable, unavailable_status
from shared.ids import utcnow
from shared.pagination import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

SNIPPET_CHARS = 150
# Experts consider at most this many best-matching items, and as many tagged ones (newest
# first), then the replies in their threads.
CANDIDATE_CAP = 500
CANDIDATE_SOURCE = ["id", "author_id", "kind", "title", "created_at", "tags", "thread_id"]
HIT_SOURCE = [
    "id",
    "kind",
    "title",
    "author_id",
    "group_id",
    "visibility",
    "tags",
    "created_at",
    "accepted_answer_id",
    "duplicate_of",
]


class BulkItemError(Exception):
    """OpenSearch refused one operation of a bulk request."""


class BulkItemUnavailable(BulkItemError, DependencyUnavailable):
    """OpenSearch could not apply one operation now (429 or 5xx): retried, never parked."""


Operation = IndexDoc | Deletion


def _action(target: str, op: Operation) -> tuple[dict[str, Any], dict[str, Any]]:
    if isinstance(op, Deletion):
        version_type, source = "external_gte", tombstone_of(op)
    else:
        version_type, source = "external", source_of(op)
    header = {
        "index": {
            "_index": target,
            "_id": str(op.id),
            "version": op.version,
            "version_type": version_type,
        }
    }
    return header, source


class OpenSearchEngine:
    """The content index behind `<prefix>-content`; thread-safe (one client per process)."""

    def __init__(self, client: OpenSearch, prefix: str, *, now: Any = utcnow) -> None:
        self.client = client
        self.prefix = prefix
        self.alias = f"{prefix}-content"
        self.rebuild_alias = f"{prefix}-content-rebuild"
        self.now = now

    # --- index lifecycle ---------------------------------------------------------------

    def new_index_name(self) -> str:
        return f"{self.alias}-{utcnow().strftime('%Y%m%d%H%M%S%f')}"

    def create_index(self, name: str, aliases: Iterable[str] = ()) -> None:
        body = {
            "settings": INDEX_SETTINGS,
            "mappings": MAPPINGS,
            "aliases": {alias: {} for alias in aliases},
        }
        self.client.indices.create(index=name, body=body)

    def indices_of(self, alias: str) -> list[str]:
        """The concrete indices an alias names (none if it does not exist)."""
        try:
            return sorted(self.client.indices.get_alias(name=alias))
        except NotFoundError:
            return []

    def ensure_index(self) -> str:
        """Create the concrete index and its alias if missing; the index the alias names."""
        existing = self.indices_of(self.alias)
        if existing:
            # Fields added since the index was made (adding is always allowed; a changed
            # field or analyzer needs a rebuild: POST /admin/reindex).
            self.client.indices.put_mapping(index=self.alias, body=MAPPINGS)
            return existing[0]
        name = self.new_index_name()
        self.create_index(name, aliases=[self.alias])
        # Two replicas starting together may both have created one: the oldest stays.
        winners = self.indices_of(self.alias)
        if len(winners) > 1 and name != winners[0]:
            self.client.indices.delete(index=name)
        return winners[0]

    def ping(self) -> None:
        """Raise unless the cluster answers and the alias exists."""
        self.client.indices.get_alias(name=self.alias)

    def drop_everything(self) -> None:
        """Delete every index behind this engine's aliases (tests and tear-down)."""
        names = set(self.indices_of(self.alias)) | set(self.indices_of(self.rebuild_alias))
        for name in sorted(names):
            self.client.indices.delete(index=name, params={"ignore_unavailable": "true"})

    # --- writes --------------------------------------------------------------------------

    def apply(self, ops: Sequence[Operation]) -> list[BaseException | None]:
        """One bulk request for `ops`, through the live alias and a rebuild's alias if any.

        Returns one result per operation: None when the index holds this version or a
        newer one, the error otherwise. Raises when the request as a whole fails.
        """
        if not ops:
            return []
        targets = [self.alias]
        rebuilding = bool(self.indices_of(self.rebuild_alias))
        if rebuilding:
            targets.append(self.rebuild_alias)
        return self._bulk(ops, targets, lenient_target=self.rebuild_alias if rebuilding else None)

    def _bulk(
        self, ops: Sequence[Operation], targets: Sequence[str], lenient_target: str | None = None
    ) -> list[BaseException | None]:
        body: list[dict[str, Any]] = []
        for op in ops:
            for target in targets:
                body.extend(_action(target, op))
        response = self.client.bulk(body=body, params={"require_alias": "true"})
        results: list[BaseException | None] = [None] * len(ops)
        items = response["items"]
        for position, item in enumerate(items):
            outcome = item["index"]
            error = outcome.get("error")
            if error is None or outcome.get("status") == 409:
                continue  # applied, or the index already holds this version or a newer one
            target = targets[position % len(targets)]
            if target == lenient_target and error.get("type") == "index_not_found_exception":
                continue  # the rebuild finished meanwhile: the live alias names the new index
            op_index = position // len(targets)
            if results[op_index] is None:
                status = outcome.get("status")
                failure = BulkItemUnavailable if unavailable_status(status) else BulkItemError
                results[op_index] = failure(
                    f"{target}: {status} {error.get('type')}: {error.get('reason')}"
                )
        return results

    def index(self, docs: Sequence[IndexDoc]) -> None:
        self._raise_first(self.apply(docs))

    def delete(self, deletions: Sequence[Deletion]) -> None:
        self._raise_first(self.apply(deletions))

    @staticmethod
    def _raise_first(results: Sequence[BaseException | None]) -> None:
        for result in results:
            if result is not None:
                raise result

    # --- queries -------------------------------------------------------------------------

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response: dict[str, Any] = self.client.search(index=self.alias, body=body)
        except RequestError as exc:
            raise BadRequest("the query cannot be searched") from exc
        return response

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
        body: dict[str, Any] = {
            "size": limit + 1,
            "query": {
                "bool": {
                    "must": [any_term_query(query.terms)],
                    "filter": _filter_conditions(filters, principal_groups),
                }
            },
            # The id breaks score ties, so the order is total and search_after is exact.
            "sort": [{"_score": "desc"}, {"id": "asc"}],
            "_source": HIT_SOURCE,
            "track_total_hits": False,
        }
        if snippets:
            body["highlight"] = _HIGHLIGHT_BODY
        if cursor is not None:
            score, last_id = decode_cursor(cursor, 2)  # type: ignore[misc]
            if not isinstance(score, int | float) or not isinstance(last_id, str):
                raise BadRequest("malformed cursor")
            body["search_after"] = [float(score), last_id]
        hits = self._search(body)["hits"]["hits"]
        next_cursor = None
        if len(hits) > limit:
            hits = hits[:limit]
            next_cursor = encode_cursor(hits[-1]["sort"])
        return SearchPage(hits=[_hit(hit) for hit in hits], next_cursor=next_cursor)

    def hits_for(
        self,
        ids: Collection[UUID],
        terms: Sequence[str],
        filters: SearchFilters,
        principal_groups: Collection[UUID],
        *,
        snippets: bool = True,
    ) -> list[SearchHit]:
        if not ids:
            return []
        conditions = [
            {"ids": {"values": [str(content_id) for content_id in ids]}},
            *_filter_conditions(filters, principal_groups),
        ]
        query: dict[str, Any] = {"bool": {"filter": conditions}}
        if terms:  # scores nothing, but lets the highlighter mark the words that match
            query["bool"]["should"] = [any_term_query(terms)]
        body: dict[str, Any] = {
            "size": len(ids),
            "query": query,
            "_source": HIT_SOURCE,
            "track_total_hits": False,
        }
        if snippets:
            body["highlight"] = _HIGHLIGHT_BODY
        hits = self._search(body)["hits"]["hits"]
        return [replace(_hit(hit), score=0.0) for hit in hits]

    def similar_questions(
        self, draft: SimilarQuery, principal_groups: Collection[UUID], limit: int
    ) -> list[SearchHit]:
        conditions = [*visible_to(principal_groups), {"term": {"kind": "question"}}]
        if draft.group_id is not None:
            conditions.append(
                {
                    "bool": {
                        "should": [
                            {"term": {"visibility": "public"}},
                            {"term": {"group_id": str(draft.group_id)}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            )
        body: dict[str, Any] = {
            "size": limit,
            "query": similar_query(draft, conditions),
            "sort": [{"_score": "desc"}, {"id": "asc"}],
            "_source": HIT_SOURCE,
            "track_total_hits": False,
            "highlight": {
                "pre_tags": [OPEN],
                "post_tags": [CLOSE],
                "fields": {
                    "body": {
                        "number_of_fragments": 1,
                        "fragment_size": SNIPPET_CHARS,
                        "no_match_size": SNIPPET_CHARS,
                    }
                },
            },
        }
        return [_hit(hit) for hit in self._search(body)["hits"]["hits"]]

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
        visible = visible_to(principal_groups)
        sources: dict[str, dict[str, Any]] = {}
        relevance: dict[str, float] = {}
        if query.terms:
            # Any word matching, best first: the engine's relevance is the topical match.
            for hit in self._search(
                {
                    "size": CANDIDATE_CAP,
                    "query": {"bool": {"must": [any_term_query(query.terms)], "filter": visible}},
                    "sort": [{"_score": "desc"}, {"id": "asc"}],
                    "_source": CANDIDATE_SOURCE,
                    "track_total_hits": False,
                }
            )["hits"]["hits"]:
                sources[hit["_source"]["id"]] = hit["_source"]
                relevance[hit["_source"]["id"]] = float(hit["_score"])
        if query.tags:
            for hit in self._search(
                {
                    "size": CANDIDATE_CAP,
                    "query": {
                        "bool": {"filter": [*visible, {"terms": {"tags": list(query.tags)}}]}
                    },
                    "sort": [{"created_at": "desc"}, {"id": "desc"}],
                    "_source": CANDIDATE_SOURCE,
                    "track_total_hits": False,
                }
            )["hits"]["hits"]:
                sources.setdefault(hit["_source"]["id"], hit["_source"])
        if sources:
            # Answers, comments and replies in the threads of those items.
            for hit in self._search(
                {
                    "size": 2 * CANDIDATE_CAP,
                    "query": {
                        "bool": {
                            "filter": [
                                *visible,
                                {"terms": {"kind": ["reply", "answer", "comment"]}},
                                {"terms": {"thread_id": sorted(sources)}},
                            ]
                        }
                    },
                    "sort": [{"created_at": "desc"}, {"id": "desc"}],
                    "_source": CANDIDATE_SOURCE,
                    "track_total_hits": False,
                }
            )["hits"]["hits"]:
                sources.setdefault(hit["_source"]["id"], hit["_source"])
        candidates = [
            Candidate(
                content_id=UUID(content_id),
                author_id=UUID(source["author_id"]),
                kind=source["kind"],
                title=source.get("title"),
                created_at=unstamp(source["created_at"]),
                relevance=relevance.get(content_id, 0.0),
                tags=tuple(source.get("tags") or ()),
                thread_id=UUID(source["thread_id"]) if source.get("thread_id") else None,
            )
            for content_id, source in sources.items()
        ]
        now = self.now()
        ranked = rank_experts(
            candidates,
            signals=signals([candidate.content_id for candidate in candidates]),
            now=now,
            limit=limit,
            query_tags=query.tags,
            priors=priors,
            only=person,
            recent_answers=self._recent_answers(
                {c.author_id for c in candidates if person in (None, c.author_id)},
                reference_time(candidates, now),
                visible,
            ),
        )
        wanted = [item.candidate.content_id for someone in ranked for item in someone.evidence]
        return as_experts(ranked, self._snippets(query, wanted))

    def tag_counts(
        self, prefix: str, principal_groups: Collection[UUID], limit: int
    ) -> list[TagCount]:
        conditions = visible_to(principal_groups)
        terms: dict[str, Any] = {
            "field": "tags",
            "size": limit,
            "order": [{"_count": "desc"}, {"_key": "asc"}],
        }
        if prefix:
            conditions.append({"prefix": {"tags": prefix}})
            # An item matching the prefix carries other tags too: only these are counted.
            terms["include"] = _lucene_literal(prefix) + ".*"
        response = self._search(
            {
                "size": 0,
                "query": {"bool": {"filter": conditions}},
                "aggs": {"tags": {"terms": terms}},
                "track_total_hits": False,
            }
        )
        return [
            TagCount(tag=bucket["key"], count=int(bucket["doc_count"]))
            for bucket in response["aggregations"]["tags"]["buckets"]
        ]

    def authored_topics(
        self, author_id: UUID, principal_groups: Collection[UUID], limit: int
    ) -> list[TagCount]:
        visible = visible_to(principal_groups)
        mine = self._search(
            {
                "size": TOPIC_ITEM_CAP,
                "query": {"bool": {"filter": [*visible, {"term": {"author_id": str(author_id)}}]}},
                "sort": [{"created_at": "desc"}, {"id": "desc"}],
                "_source": ["id", "tags", "thread_id"],
                "track_total_hits": False,
            }
        )["hits"]["hits"]
        threads = sorted(
            {hit["_source"]["thread_id"] for hit in mine if hit["_source"].get("thread_id")}
        )
        thread_tags: dict[str, list[str]] = {}
        if threads:
            for hit in self._search(
                {
                    "size": len(threads),
                    "query": {"bool": {"filter": [*visible, {"terms": {"id": threads}}]}},
                    "_source": ["id", "tags"],
                    "track_total_hits": False,
                }
            )["hits"]["hits"]:
                thread_tags[hit["_source"]["id"]] = hit["_source"].get("tags") or []
        uses: dict[str, int] = {}
        for hit in mine:
            source = hit["_source"]
            tags = set(source.get("tags") or ()) | set(
                thread_tags.get(source.get("thread_id") or "", ())
            )
            for tag in tags:
                uses[tag] = uses.get(tag, 0) + 1
        ranked = sorted(uses.items(), key=lambda pair: (-pair[1], pair[0]))
        return [TagCount(tag=tag, count=count) for tag, count in ranked[:limit]]

    def _recent_answers(
        self, people: Collection[UUID], reference: datetime, visible: list[dict[str, Any]]
    ) -> dict[UUID, int]:
        """Visible answers and replies per person in the availability window, on any topic."""
        if not people:
            return {}
        response = self._search(
            {
                "size": 0,
                "query": {
                    "bool": {
                        "filter": [
                            *visible,
                            {"terms": {"kind": ["answer", "reply"]}},
                            {"terms": {"author_id": sorted(str(p) for p in people)}},
                            {
                                "range": {
                                    "created_at": {
                                        "gte": stamp(active_since(reference)),
                                        "lte": stamp(reference),
                                    }
                                }
                            },
                        ]
                    }
                },
                "aggs": {"people": {"terms": {"field": "author_id", "size": len(people)}}},
                "track_total_hits": False,
            }
        )
        buckets = response["aggregations"]["people"]["buckets"]
        return {UUID(bucket["key"]): int(bucket["doc_count"]) for bucket in buckets}

    def _snippets(self, query: ExpertQuery, ids: list[UUID]) -> dict[UUID, str]:
        """Highlighted snippets where the body matches, the body's opening otherwise."""
        if not ids:
            return {}
        hits = self._search(
            {
                "size": len(ids),
                "query": {
                    "bool": {
                        "filter": [{"terms": {"id": [str(i) for i in ids]}}],
                        "should": [any_term_query(query.terms)] if query.terms else [],
                    }
                },
                "_source": ["id", "body"],
                "highlight": {
                    "pre_tags": [OPEN],
                    "post_tags": [CLOSE],
                    "fields": {"body": {"number_of_fragments": 1, "fragment_size": SNIPPET_CHARS}},
                },
            }
        )["hits"]["hits"]
        snippets = {}
        for hit in hits:
            marked = hit.get("highlight", {}).get("body")
            body = hit["_source"].get("body") or ""
            snippets[UUID(hit["_source"]["id"])] = (
                render(marked[0]) if marked else plain_snippet(body)
            )
        return snippets

    # --- rebuilds ------------------------------------------------------------------------

    def begin_rebuild(self) -> str:
        """Create a fresh index behind the rebuild alias; live writes now go to both."""
        name = self.new_index_name()
        self.create_index(name, aliases=[self.rebuild_alias])
        building = self.indices_of(self.rebuild_alias)
        if building != [name]:
            self.client.indices.delete(index=name)
            raise RebuildInProgress(f"a rebuild into {building} is already running")
        return name

    def write_rebuild(self, docs: Sequence[IndexDoc | Deletion]) -> list[BaseException | None]:
        """Copy items into the index being built (external versions: newer live writes win)."""
        if not docs:
            return []
        return self._bulk(docs, [self.rebuild_alias])

    def live_tombstones(self, index: str, page: int = 1000) -> Iterator[Deletion]:
        """Every tombstone in `index`, so a rebuild keeps deletions posts no longer lists."""
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": page,
                "query": {"term": {"deleted": True}},
                "sort": [{"id": "asc"}],
                "_source": ["id", "version"],
            }
            if after is not None:
                body["search_after"] = after
            hits = self.client.search(index=index, body=body)["hits"]["hits"]
            for hit in hits:
                yield Deletion(id=UUID(hit["_source"]["id"]), version=hit["_source"]["version"])
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    def finish_rebuild(self, new_index: str) -> list[str]:
        """Point the live alias at `new_index` in one atomic step; returns the old indices."""
        old = self.indices_of(self.alias)
        self.client.indices.refresh(index=new_index)
        actions: list[dict[str, Any]] = [
            {"remove": {"index": name, "alias": self.alias}} for name in old
        ]
        actions += [
            {"add": {"index": new_index, "alias": self.alias}},
            {"remove": {"index": new_index, "alias": self.rebuild_alias}},
        ]
        self.client.indices.update_aliases(body={"actions": actions})
        return old

    def abandon_rebuild(self, new_index: str) -> None:
        """Drop a rebuild that failed; the live index was never touched."""
        self.client.indices.delete(index=new_index, params={"ignore_unavailable": "true"})


def _filter_conditions(
    filters: SearchFilters, principal_groups: Collection[UUID]
) -> list[dict[str, Any]]:
    """Visible to the caller and matching the filters."""
    conditions = visible_to(principal_groups)
    if filters.kind:
        conditions.append({"term": {"kind": filters.kind}})
    if filters.tag:
        conditions.append({"term": {"tags": filters.tag}})
    if filters.author_id:
        conditions.append({"term": {"author_id": str(filters.author_id)}})
    if filters.group_id:
        conditions.append({"term": {"group_id": str(filters.group_id)}})
    if filters.since or filters.until:
        bounds = {}
        if filters.since:
            bounds["gte"] = stamp(filters.since)
        if filters.until:
            bounds["lt"] = stamp(filters.until)
        conditions.append({"range": {"created_at": bounds}})
    return conditions


# The body's best fragment with matches marked, or its opening when nothing matches.
_HIGHLIGHT_BODY: dict[str, Any] = {
    "pre_tags": [OPEN],
    "post_tags": [CLOSE],
    "fields": {
        "body": {
            "number_of_fragments": 1,
            "fragment_size": SNIPPET_CHARS,
            "no_match_size": SNIPPET_CHARS,
        }
    },
}


def _lucene_literal(text: str) -> str:
    """`text` as a Lucene regular expression matching itself (every non-alphanumeric escaped)."""
    return "".join(char if char.isalnum() else "\\" + char for char in text)


def _hit(hit: dict[str, Any]) -> SearchHit:
    source = hit["_source"]
    marked = hit.get("highlight", {}).get("body")
    return SearchHit(
        id=UUID(source["id"]),
        kind=source["kind"],
        title=source.get("title"),
        snippet=render(marked[0]) if marked else "",
        author_id=UUID(source["author_id"]),
        group_id=UUID(source["group_id"]) if source.get("group_id") else None,
        visibility=source["visibility"],
        tags=tuple(source.get("tags") or ()),
        created_at=unstamp(source["created_at"]),
        score=float(hit["_score"]),
        has_accepted_answer=bool(source.get("accepted_answer_id")),
        duplicate_of=UUID(source["duplicate_of"]) if source.get("duplicate_of") else None,
    )
