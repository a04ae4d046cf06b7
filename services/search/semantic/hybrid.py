"""Hybrid retrieval: keyword candidates and vector candidates, fused (see `fusion`).

Both retrievals filter by permission inside: the engine's query, and the vector index's
mask. Items found only by meaning are then shown by the engine (`hits_for`), which
applies the permission and the filters again and highlights any query words they contain,
so every hit looks alike, and nothing the engine would not show is shown.

Search pages: the fused ranking of both windows (at most `2 * WINDOW` results) is paged
by offset; past it, the keyword ranking continues, without what the fused ranking showed.
"""

from collections.abc import Collection, Sequence
from dataclasses import replace
from uuid import UUID

from services.search.engines.base import (
    SearchEngine,
    SearchFilters,
    SearchHit,
    SearchPage,
    SimilarQuery,
    TextQuery,
)
from services.search.semantic.fusion import CANDIDATES, fuse
from services.search.semantic.service import Semantic
from shared.errors import BadRequest
from shared.pagination import decode_cursor, encode_cursor

WINDOW = CANDIDATES  # candidates from each retrieval (the depth the fusion was fitted at)
# Nearest neighbours always exist; below this cosine they are not about the query, and a
# search must not show them. Pairs of unrelated questions (one from each shared Stack
# Exchange site, all-MiniLM-L6-v2) stay below 0.31 in 999 of 1,000 cases.
MIN_SIMILARITY = 0.35
FUSED, KEYWORD = "f", "k"


def _dense_candidates(
    semantic: Semantic,
    text: str,
    groups: Collection[UUID],
    kinds: Collection[str] | None,
) -> list[tuple[UUID, float]]:
    vector = semantic.query_vector(text)
    if vector is None or semantic.index is None:
        return []
    return semantic.index.nearest(vector, groups, WINDOW, kinds=kinds, floor=MIN_SIMILARITY)


def _fused(
    engine: SearchEngine,
    keyword_hits: Sequence[SearchHit],
    dense: Sequence[tuple[UUID, float]],
    filters: SearchFilters,
    groups: Collection[UUID],
    limit: int,
) -> list[tuple[UUID, float]]:
    """The fused ranking of both candidate lists, of items the engine shows."""
    known = {hit.id for hit in keyword_hits}
    only_dense = [content_id for content_id, _ in dense if content_id not in known]
    # The engine checks the permission and the filters again: a vector candidate it does
    # not show (filtered out, or not indexed yet) drops out.
    known |= {hit.id for hit in engine.hits_for(only_dense, (), filters, groups, snippets=False)}
    shown = [(content_id, score) for content_id, score in dense if content_id in known]
    return fuse([(hit.id, hit.score) for hit in keyword_hits], shown, limit=limit)


def _shown(
    engine: SearchEngine,
    ranked: Sequence[tuple[UUID, float]],
    terms: Sequence[str],
    filters: SearchFilters,
    groups: Collection[UUID],
) -> list[SearchHit]:
    """The hits of a ranked slice, with their snippets, in its order."""
    hits = {hit.id: hit for hit in engine.hits_for([i for i, _ in ranked], terms, filters, groups)}
    return [replace(hits[i], score=score) for i, score in ranked if i in hits]


def search(
    engine: SearchEngine,
    semantic: Semantic,
    query: TextQuery,
    text: str,
    filters: SearchFilters,
    groups: Collection[UUID],
    cursor: str | None,
    limit: int,
) -> SearchPage:
    """One page of `/search` ranked by keyword and meaning together."""
    position = decode_cursor(cursor, 2)
    kinds = [filters.kind] if filters.kind else None
    if position is not None and position[0] == KEYWORD and isinstance(position[1], str):
        # Past the fused window: keyword order, without what the window already showed.
        shown = {content_id for content_id, _ in _dense_candidates(semantic, text, groups, kinds)}
        page = engine.search(query, filters, groups, position[1], limit)
        hits = [hit for hit in page.hits if hit.id not in shown]
        return SearchPage(hits=hits, next_cursor=_continued(page.next_cursor))
    offset = 0
    if position is not None:
        if position[0] != FUSED or not isinstance(position[1], int) or position[1] < 0:
            raise BadRequest("malformed cursor")
        offset = position[1]
    # Ranked without snippets: only the page shown gets them.
    keyword = engine.search(query, filters, groups, None, WINDOW, snippets=False)
    dense = _dense_candidates(semantic, text, groups, kinds)
    fused = _fused(engine, keyword.hits, dense, filters, groups, 2 * WINDOW)
    hits = _shown(engine, fused[offset : offset + limit], query.terms, filters, groups)
    if offset + limit < len(fused):
        return SearchPage(hits=hits, next_cursor=encode_cursor([FUSED, offset + limit]))
    return SearchPage(hits=hits, next_cursor=_continued(keyword.next_cursor))


def _continued(keyword_cursor: str | None) -> str | None:
    """Where the keyword order goes on past the fused window."""
    return encode_cursor([KEYWORD, keyword_cursor]) if keyword_cursor else None


def similar_questions(
    engine: SearchEngine,
    semantic: Semantic,
    draft: SimilarQuery,
    text: str,
    groups: Collection[UUID],
    limit: int,
) -> list[SearchHit]:
    """Questions like a draft, by its words and its meaning (public and the draft's group)."""
    keyword = engine.similar_questions(draft, groups, WINDOW)
    scope = [group for group in groups if group == draft.group_id] if draft.group_id else groups
    dense = _dense_candidates(semantic, text, scope, ["question"])
    questions = SearchFilters(kind="question")
    ranked = _fused(engine, keyword, dense, questions, scope, limit)
    return _shown(engine, ranked, (*draft.title_terms, *draft.body_terms), questions, scope)
