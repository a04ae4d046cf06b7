"""Rebuild the content index from posts, the source of truth, without a gap in service.

OpenSearch only:
1. `begin_rebuild` creates a fresh index behind the rebuild alias; from then on the
   consumer writes every content event to the live index and the new one.
2. Every live item is read from posts (`GET /internal/content`, the admin's token) and
   written to the new index with its version. A live event for the same item with a
   newer version wins whichever arrives first (external versions), so nothing is lost,
   overwritten by older data, or duplicated (the document id is the content id).
   Why this cannot miss an event: a consumer batch that decided "no rebuild running"
   before step 1 applies events whose changes posts had committed before step 1, so the
   copy in step 2, which starts later, reads them (or something newer).
3. Tombstones are copied from the live index, so a deletion posts no longer lists still
   stops a late, older create after the swap. This runs last, when every batch that
   could have missed the rebuild alias has long finished.
4. One `_aliases` request moves the live alias to the new index and drops the rebuild
   alias (atomic: every search sees the old or the new index), then the old index is
   deleted. Searches answer from the old index all along until the swap.

The embedded engine has no keyword rebuild: its index is written in the same transaction
as the processed-event record and cannot drift from the events it applied.

With the embedding model, every rebuild also makes the vectors of the items that lack them
or have older ones, or another model's (after a change of `KNOWFLOW_SEMANTIC_MODEL`, or a
model fetched after content was written); on the embedded engine that is all it does.
"""

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from services.search.engines import OPENSEARCH, engine_name, opensearch_engine
from services.search.engines.base import RebuildInProgress
from services.search.semantic.service import Semantic, embed_operations
from services.search.service import doc_from_snapshot, operation_for
from shared.errors import Conflict, KnowflowError
from shared.events.contracts import ContentSnapshot, QuestionSnapshot
from shared.settings import Settings

if TYPE_CHECKING:  # only a rebuild of the OpenSearch index needs it (services/search/engines)
    from services.search.engines.opensearch import OpenSearchEngine

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # posts caps its pages at 100


class NotSupported(KnowflowError):
    status = 501
    title = "Not Implemented"


class UpstreamFailed(KnowflowError):
    status = 502
    title = "Bad Gateway"


@dataclass(frozen=True)
class ReindexReport:
    index: str
    replaced: list[str]
    copied: int
    tombstones: int
    seconds: float
    vectors: int = 0  # items whose vectors were made


def reindex_from_posts(
    settings: Settings,
    *,
    bearer_token: str,
    client: httpx.Client | None = None,
    semantic: Semantic | None = None,
) -> ReindexReport:
    """Rebuild the OpenSearch index from posts and swap it in, and the vectors (for the route
    and the CLI)."""
    opensearch = engine_name(settings) == OPENSEARCH
    if not opensearch and (semantic is None or not semantic.enabled):
        raise NotSupported(
            "the embedded engine needs no rebuild: its index is written in the same "
            "transaction as the events it applies; reindexing needs KNOWFLOW_SEARCH_URL "
            "(or the embedding model, whose vectors a rebuild makes)"
        )
    http = client or httpx.Client(base_url=settings.posts_url, timeout=30.0)
    try:
        if not opensearch:
            assert semantic is not None
            return rebuild_vectors(semantic, http, bearer_token=bearer_token)
        engine = opensearch_engine(settings.search_url, settings.search_index_prefix)
        return rebuild(engine, http, bearer_token=bearer_token, semantic=semantic)
    finally:
        if client is None:
            http.close()


def _embed(semantic: Semantic | None, snapshots: list[ContentSnapshot]) -> int:
    if semantic is None or not semantic.enabled:
        return 0
    return embed_operations(semantic, [operation_for(item) for item in snapshots])


def rebuild_vectors(semantic: Semantic, http: httpx.Client, *, bearer_token: str) -> ReindexReport:
    """The vectors of every live item that lacks current ones (the embedded engine's rebuild)."""
    started = time.monotonic()
    copied = vectors = 0
    for snapshots in _content_pages(http, bearer_token):
        vectors += _embed(semantic, snapshots)
        copied += len(snapshots)
    seconds = round(time.monotonic() - started, 3)
    log.info("vectors rebuilt: %d of %d items embedded, %.1fs", vectors, copied, seconds)
    return ReindexReport(
        index="embedded", replaced=[], copied=copied, tombstones=0, seconds=seconds, vectors=vectors
    )


def rebuild(
    engine: "OpenSearchEngine",
    http: httpx.Client,
    *,
    bearer_token: str,
    semantic: Semantic | None = None,
) -> ReindexReport:
    """Steps 1 to 4 above against one engine, reading posts through `http`."""
    started = time.monotonic()
    vectors = 0
    try:
        new_index = engine.begin_rebuild()
    except RebuildInProgress as exc:
        raise Conflict(str(exc)) from exc
    log.info("rebuilding the content index into %s", new_index)
    try:
        copied = 0
        for snapshots in _content_pages(http, bearer_token):
            _check(engine.write_rebuild([doc_from_snapshot(item) for item in snapshots]))
            vectors += _embed(semantic, snapshots)
            copied += len(snapshots)
        tombstones = 0
        for old in engine.indices_of(engine.alias):
            batch = []
            for deletion in engine.live_tombstones(old):
                batch.append(deletion)
                if len(batch) == 500:
                    _check(engine.write_rebuild(batch))
                    tombstones += len(batch)
                    batch = []
            _check(engine.write_rebuild(batch))
            tombstones += len(batch)
        replaced = engine.finish_rebuild(new_index)
    except BaseException:
        engine.abandon_rebuild(new_index)
        raise
    for old in replaced:
        engine.client.indices.delete(index=old, params={"ignore_unavailable": "true"})
    seconds = round(time.monotonic() - started, 3)
    log.info("content index rebuilt: %d items, %d tombstones, %.1fs", copied, tombstones, seconds)
    return ReindexReport(
        index=new_index,
        replaced=replaced,
        copied=copied,
        tombstones=tombstones,
        seconds=seconds,
        vectors=vectors,
    )


def _content_pages(http: httpx.Client, bearer_token: str) -> Iterator[list[ContentSnapshot]]:
    """Pages of posts' full listing, following its cursor."""
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        try:
            response = http.get(
                "/internal/content",
                params=params,
                headers={"Authorization": f"Bearer {bearer_token}"},
            )
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"posts is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise UpstreamFailed(f"posts answered {response.status_code}: {response.text[:200]}")
        page = response.json()
        # A question's snapshot also carries its accepted answer and duplicate link.
        yield [
            (
                QuestionSnapshot if item.get("kind") == "question" else ContentSnapshot
            ).model_validate(item)
            for item in page["items"]
        ]
        cursor = page.get("next_cursor")
        if not cursor:
            return


def _check(results: list[BaseException | None]) -> None:
    for result in results:
        if result is not None:
            raise result
