"""Search's endpoints: parse, call the service, shape the response."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from services.search import reindex, service
from services.search.engines.base import (
    MAX_EXPERT_QUERY_CHARS,
    MAX_EXPERT_TAGS,
    MAX_QUERY_CHARS,
    ExpertQuery,
    SearchEngine,
    SearchFilters,
    SimilarQuery,
    TextQuery,
    normalise_tag,
)
from services.search.schemas import (
    EvidenceItem,
    ExpertItem,
    ExpertResults,
    ReindexResult,
    SearchItem,
    SearchResults,
    SimilarQuestion,
    SimilarQuestions,
    SimilarRequest,
)
from services.search.semantic.service import Semantic
from shared.auth import CurrentUser, bearer_token
from shared.db import SessionDep
from shared.errors import BadRequest, Forbidden
from shared.events.contracts import ContentKind
from shared.idempotency import IdempotentRoute
from shared.ids import UtcDatetime
from shared.pagination import CursorParam, PageSize

MAX_TAG_CHARS = 50
router = APIRouter(tags=["search"], route_class=IdempotentRoute)


def get_search_engine(request: Request, session: SessionDep) -> SearchEngine:
    """The configured engine, bound to this request's session."""
    engine: SearchEngine = request.app.state.engine_factory(session)
    return engine


SearchEngineDep = Annotated[SearchEngine, Depends(get_search_engine)]


def get_semantic(request: Request) -> Semantic:
    """Semantic retrieval (off when the model is missing: then keyword retrieval alone)."""
    semantic: Semantic = request.app.state.semantic
    return semantic


SemanticDep = Annotated[Semantic, Depends(get_semantic)]
QueryText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)]


@router.get("/search", responses={400: {"description": "Nothing searchable in the query"}})
def search(
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
    semantic: SemanticDep,
    q: QueryText,
    cursor: CursorParam = None,
    limit: PageSize = 20,
    kind: ContentKind | None = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    author_id: UUID | None = None,
    group_id: UUID | None = None,
    since: Annotated[UtcDatetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Created before.")] = None,
) -> SearchResults:
    """Posts, replies and articles the caller may see, best match first.

    On the embedded engine, a word found in at least half of a large index (20,000 items or
    more) matches without ranking: items matching only such words follow, newest first.
    """
    if since and until and since >= until:
        raise BadRequest("`since` must be before `until`")
    page = service.search_content(
        session=session,
        engine=engine,
        principal=principal,
        query=TextQuery.parse(q),
        text=q,
        semantic=semantic,
        filters=SearchFilters(
            kind=kind,
            tag=normalise_tag(tag) if tag else None,
            author_id=author_id,
            group_id=group_id,
            since=since,
            until=until,
        ),
        cursor=cursor,
        limit=limit,
    )
    return SearchResults(
        items=[
            SearchItem(
                id=hit.id,
                kind=hit.kind,
                title=hit.title,
                snippet=hit.snippet,
                author_id=hit.author_id,
                group_id=hit.group_id,
                visibility=hit.visibility,
                tags=list(hit.tags),
                created_at=hit.created_at,
                score=hit.score,
            )
            for hit in page.hits
        ],
        next_cursor=page.next_cursor,
    )


@router.post(
    "/questions/similar",
    responses={400: {"description": "Nothing to compare in the draft"}},
)
def similar_questions(
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
    semantic: SemanticDep,
    draft: SimilarRequest,
) -> SimilarQuestions:
    """Questions the caller may see that look like the one being asked, best first."""
    hits = service.find_similar_questions(
        session=session,
        engine=engine,
        principal=principal,
        draft=SimilarQuery.parse(draft.title, draft.body, draft.tags, draft.group_id),
        text=f"{draft.title}\n{draft.body or ''}",
        limit=draft.limit,
        semantic=semantic,
    )
    return SimilarQuestions(
        items=[
            SimilarQuestion(
                question_id=hit.id,
                title=hit.title,
                snippet=hit.snippet,
                score=hit.score,
                tags=list(hit.tags),
                group_id=hit.group_id,
                visibility=hit.visibility,
                created_at=hit.created_at,
                has_accepted_answer=hit.has_accepted_answer,
                duplicate_of=hit.duplicate_of,
            )
            for hit in hits
        ]
    )


@router.get(
    "/experts",
    responses={400: {"description": "Nothing searchable, or both `topic` and `q`/`tag`"}},
)
def experts(
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
    semantic: SemanticDep,
    topic: Annotated[
        str | None, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="A word or tag.")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_EXPERT_QUERY_CHARS,
            description="Free text, e.g. a question's title and body: any word may match.",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        Query(max_length=MAX_EXPERT_TAGS, description="Tags of the question (repeatable)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> ExpertResults:
    """Who knows about a topic, or who is likely to answer a question (free text and tags).

    Judged only by what the caller may see; with the embedding model on, also by how close
    in meaning each person's answers are to what is asked (said in their `why`).
    """
    tags = tag or []
    if any(len(value) > MAX_TAG_CHARS for value in tags):
        raise BadRequest(f"a tag has at most {MAX_TAG_CHARS} characters")
    if topic is not None and (q is not None or tags):
        raise BadRequest("ask with either `topic`, or `q` and `tag`")
    if topic is not None:
        query = ExpertQuery.of(TextQuery.parse(topic))
    elif q is not None or tags:
        query = ExpertQuery.parse(q or "", tags)
    else:
        raise BadRequest("ask with `topic`, or with `q` and/or `tag`")
    ranked = service.find_experts(
        session=session,
        engine=engine,
        principal=principal,
        topic=query,
        # What is asked, in words, for meaning: the topic, the question, or its tags.
        text=topic or q or " ".join(tags),
        limit=limit,
        semantic=semantic,
    )
    return ExpertResults(
        topic=topic,
        q=q,
        tags=list(query.tags) if topic is None else [],
        experts=[
            ExpertItem(
                user_id=expert.user_id,
                handle=user.handle if user else None,
                display_name=user.display_name if user else None,
                score=expert.score,
                thanks=expert.thanks,
                why=expert.why,
                evidence=[EvidenceItem.of(item) for item in expert.evidence],
            )
            for expert, user in ranked
        ],
    )


@router.post(
    "/admin/reindex",
    tags=["admin"],
    responses={
        403: {"description": "Not an administrator"},
        409: {"description": "A rebuild is already running"},
        501: {"description": "The embedded engine without the embedding model: nothing to rebuild"},
        502: {"description": "Posts could not be read"},
    },
)
def rebuild_index(principal: CurrentUser, request: Request, semantic: SemanticDep) -> ReindexResult:
    """Rebuild the content index from posts into a fresh index and swap it in (OpenSearch),
    and make the vectors items lack (with the embedding model, on either engine)."""
    if not principal.is_admin:
        raise Forbidden("only administrators may rebuild the index")
    report = reindex.reindex_from_posts(
        request.app.state.settings,
        bearer_token=bearer_token(request.headers.get("authorization")),
        semantic=semantic,
    )
    return ReindexResult(
        index=report.index,
        replaced=report.replaced,
        copied=report.copied,
        tombstones=report.tombstones,
        seconds=report.seconds,
        vectors=report.vectors,
    )
