"""Search's endpoints: parse, call the service, shape the response."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from services.search import reindex, service
from services.search.engines.base import (
    MAX_QUERY_CHARS,
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
from shared.auth import CurrentUser, bearer_token
from shared.db import SessionDep
from shared.errors import BadRequest, Forbidden
from shared.events.contracts import ContentKind
from shared.idempotency import IdempotentRoute
from shared.ids import UtcDatetime
from shared.pagination import CursorParam, PageSize

router = APIRouter(tags=["search"], route_class=IdempotentRoute)


def get_search_engine(request: Request, session: SessionDep) -> SearchEngine:
    """The configured engine, bound to this request's session."""
    engine: SearchEngine = request.app.state.engine_factory(session)
    return engine


SearchEngineDep = Annotated[SearchEngine, Depends(get_search_engine)]
QueryText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)]


@router.get("/search", responses={400: {"description": "Nothing searchable in the query"}})
def search(
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
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
    """Posts, replies and articles the caller may see, best match first."""
    if since and until and since >= until:
        raise BadRequest("`since` must be before `until`")
    page = service.search_content(
        session=session,
        engine=engine,
        principal=principal,
        query=TextQuery.parse(q),
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
    principal: CurrentUser, session: SessionDep, engine: SearchEngineDep, draft: SimilarRequest
) -> SimilarQuestions:
    """Questions the caller may see that look like the one being asked, best first."""
    hits = service.find_similar_questions(
        session=session,
        engine=engine,
        principal=principal,
        draft=SimilarQuery.parse(draft.title, draft.body, draft.tags, draft.group_id),
        limit=draft.limit,
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


@router.get("/experts", responses={400: {"description": "Nothing searchable in the topic"}})
def experts(
    principal: CurrentUser,
    session: SessionDep,
    engine: SearchEngineDep,
    topic: QueryText,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> ExpertResults:
    """Who knows about a topic, judged only by what the caller may see."""
    ranked = service.find_experts(
        session=session,
        engine=engine,
        principal=principal,
        topic=TextQuery.parse(topic),
        limit=limit,
    )
    return ExpertResults(
        topic=topic,
        experts=[
            ExpertItem(
                user_id=expert.user_id,
                handle=user.handle if user else None,
                display_name=user.display_name if user else None,
                score=expert.score,
                thanks=expert.thanks,
                evidence=[
                    EvidenceItem(
                        content_id=item.content_id,
                        kind=item.kind,
                        title=item.title,
                        snippet=item.snippet,
                        created_at=item.created_at,
                        weight=item.weight,
                        thanks=item.thanks,
                    )
                    for item in expert.evidence
                ],
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
        501: {"description": "The embedded engine has no rebuild"},
        502: {"description": "Posts could not be read"},
    },
)
def rebuild_index(principal: CurrentUser, request: Request) -> ReindexResult:
    """Rebuild the content index from posts into a fresh index and swap it in (OpenSearch)."""
    if not principal.is_admin:
        raise Forbidden("only administrators may rebuild the index")
    report = reindex.reindex_from_posts(
        request.app.state.settings,
        bearer_token=bearer_token(request.headers.get("authorization")),
    )
    return ReindexResult(
        index=report.index,
        replaced=report.replaced,
        copied=report.copied,
        tombstones=report.tombstones,
        seconds=report.seconds,
    )
