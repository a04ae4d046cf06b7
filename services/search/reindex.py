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

The embedded engine has no rebuild: its index is written in the same transaction as
the processed-event record and cannot drift from the events it applied.
"""

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from services.search.engines import OPENSEARCH, engine_name, opensearch_engine
from services.search.engines.opensearch import OpenSearchEngine, RebuildInProgress
from services.search.service import doc_from_snapshot
from shared.errors import Conflict, KnowflowError
from shared.events.contracts import ContentSnapshot, QuestionSnapshot
from shared.settings import Settings

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


def reindex_from_posts(
    settings: Settings, *, bearer_token: str, client: httpx.Client | None = None
) -> ReindexReport:
    """Rebuild the OpenSearch index from posts and swap it in (for the route and the CLI)."""
    if engine_name(settings) != OPENSEARCH:
        raise NotSupported(
            "the embedded engine needs no rebuild: its index is written in the same "
            "transaction as the events it applies; reindexing needs KNOWFLOW_SEARCH_URL"
        )
    engine = opensearch_engine(settings.search_url, settings.search_index_prefix)
    http = client or httpx.Client(base_url=settings.posts_url, timeout=30.0)
    try:
        return rebuild(engine, http, bearer_token=bearer_token)
    finally:
        if client is None:
            http.close()


def rebuild(engine: OpenSearchEngine, http: httpx.Client, *, bearer_token: str) -> ReindexReport:
    """Steps 1 to 4 above against one engine, reading posts through `http`."""
    started = time.monotonic()
    try:
        new_index = engine.begin_rebuild()
    except RebuildInProgress as exc:
        raise Conflict(str(exc)) from exc
    log.info("rebuilding the content index into %s", new_index)
    try:
        copied = 0
        for snapshots in _content_pages(http, bearer_token):
            _check(engine.write_rebuild([doc_from_snapshot(item) for item in snapshots]))
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
        index=new_index, replaced=replaced, copied=copied, tombstones=tombstones, seconds=seconds
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
