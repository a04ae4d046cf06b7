"""Posts' endpoints: parse, call the service, shape the response."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status
from sqlmodel import Session

from services.posts import articles, content, service
from services.posts.access import IdentityDep
from services.posts.models import Article, ArticleRevision, Post, PostKind, ReactionKind
from services.posts.schemas import (
    ArticleCreate,
    ArticlePublic,
    ArticleUpdate,
    Formalize,
    PostCreate,
    PostPublic,
    PostUpdate,
    ReactionCreate,
    RevisionPublic,
    RevisionSummary,
)
from shared.auth import CurrentUser, Principal
from shared.db import SessionDep
from shared.events.contracts import ContentSnapshot
from shared.idempotency import IdempotentRoute
from shared.pagination import CursorParam, Page, PageSize
from shared.preconditions import PRECONDITION_FAILED, WITH_ETAG, IfMatch, check_if_match, etag

router = APIRouter(route_class=IdempotentRoute)

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No such item, or one the caller may not read"}}
NOT_YOURS: Responses = {403: {"description": "Someone else's item"}, **NOT_FOUND}
READ_ONE: Responses = {**WITH_ETAG, **NOT_FOUND}
CHANGE: Responses = {**WITH_ETAG, **NOT_YOURS, **PRECONDITION_FAILED}
REMOVE: Responses = {**NOT_YOURS, **PRECONDITION_FAILED}
FORMALIZED: dict[str, Any] = {
    "description": "The thread is already formalized: `article_id` and `Location` name it",
    "headers": {"Location": {"description": "The article", "schema": {"type": "string"}}},
}
TagParam = Annotated[str | None, Query(max_length=51, description="A tag, with or without '#'.")]


def post_public(
    post: Post,
    *,
    formalized_as: list[UUID] | None = None,
    reactions: dict[str, int] | None = None,
    my_reactions: list[str] | None = None,
    reply_count: int = 0,
) -> PostPublic:
    return PostPublic.model_validate(
        {
            **post.model_dump(),
            "formalized_as": formalized_as or [],
            "reactions": reactions or {},
            "my_reactions": my_reactions or [],
            "reply_count": reply_count,
        }
    )


def posts_public(session: Session, principal: Principal, posts: list[Post]) -> list[PostPublic]:
    """Posts with their formalized articles, reactions and replies (four queries for all)."""
    ids = [post.id for post in posts]
    links = service.formalized_as(session=session, principal=principal, post_ids=ids)
    counts = service.reaction_counts(session=session, post_ids=ids)
    mine = service.own_reactions(session=session, principal=principal, post_ids=ids)
    replies = service.reply_counts(session=session, post_ids=ids)
    return [
        post_public(
            post,
            formalized_as=links.get(post.id),
            reactions=counts.get(post.id),
            my_reactions=mine.get(post.id),
            reply_count=replies.get(post.id, 0),
        )
        for post in posts
    ]


def article_public(article: Article) -> ArticlePublic:
    return ArticlePublic.model_validate(
        {
            **article.model_dump(),
            "source_thread_id": article.source_thread_id or article.source_question_id,
            "source_kind": "question"
            if article.source_question_id
            else ("post" if article.source_thread_id else None),
        }
    )


def item_etag(item: Post | Article) -> str:
    """Posts and articles: the version names the state (it goes up on every change)."""
    return etag(item.id, item.version)


def revision_summary(revision: ArticleRevision) -> RevisionSummary:
    return RevisionSummary.model_validate(revision.model_dump())


# --- posts ----------------------------------------------------------------------------


@router.post(
    "/posts",
    tags=["posts"],
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "A reply in another group than its thread"},
        403: {"description": "Not a member of the group"},
        **NOT_FOUND,
    },
)
def create_post(
    body: PostCreate, principal: CurrentUser, session: SessionDep, identity: IdentityDep
) -> PostPublic:
    """Write a flow post, or a reply (with `parent_id`) in the parent's thread."""
    post = service.do_create_post(
        session=session, principal=principal, request=body, identity=identity
    )
    # Written just now: no replies, reactions or articles yet, so nothing to look up.
    return post_public(post)


@router.get("/posts", tags=["posts"])
def list_posts(
    principal: CurrentUser,
    session: SessionDep,
    author_id: UUID | None = None,
    tag: TagParam = None,
    group_id: UUID | None = None,
    kind: PostKind | None = None,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[PostPublic]:
    """Posts and replies the caller may read, newest first."""
    posts, next_cursor = service.list_readable(
        session=session,
        principal=principal,
        model=Post,
        author_id=author_id,
        tag=tag,
        group_id=group_id,
        kind=kind,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=posts_public(session, principal, posts), next_cursor=next_cursor)


@router.get("/posts/{post_id}", tags=["posts"], responses=READ_ONE)
def read_post(
    post_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> PostPublic:
    post = service.check_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    response.headers["ETag"] = item_etag(post)
    return posts_public(session, principal, [post])[0]


@router.patch("/posts/{post_id}", tags=["posts"], responses=CHANGE)
def update_post(
    post_id: UUID,
    body: PostUpdate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
    if_match: IfMatch = None,
) -> PostPublic:
    """The author replaces the body; the version goes up (If-Match: only from that ETag)."""
    post = service.check_own_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    check_if_match(if_match, item_etag(post))
    post = service.do_update_post(session=session, post=post, body=body.body)
    response.headers["ETag"] = item_etag(post)
    return posts_public(session, principal, [post])[0]


@router.delete(
    "/posts/{post_id}",
    tags=["posts"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=REMOVE,
)
def delete_post(
    post_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    if_match: IfMatch = None,
) -> None:
    post = service.check_own_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    check_if_match(if_match, item_etag(post))
    service.do_delete_post(session=session, post=post)


@router.get("/posts/{post_id}/replies", tags=["posts"], responses=NOT_FOUND)
def list_replies(
    post_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[PostPublic]:
    """Direct replies to a post, oldest first."""
    post = service.check_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    replies, next_cursor = service.list_replies(
        session=session, principal=principal, post=post, cursor=cursor, limit=limit
    )
    return Page(items=posts_public(session, principal, replies), next_cursor=next_cursor)


@router.post(
    "/posts/{post_id}/formalize",
    tags=["posts", "articles"],
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "The thread is too long for an article"},
        403: {"description": "Not a member of the thread's group"},
        409: FORMALIZED,
        **NOT_FOUND,
    },
)
def formalize(
    post_id: UUID,
    body: Formalize,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> ArticlePublic:
    """Turn the thread this post belongs to into an article that links back to it."""
    article = articles.do_formalize(
        session=session, principal=principal, post_id=post_id, title=body.title, identity=identity
    )
    return article_public(article)


@router.post(
    "/posts/{post_id}/reactions",
    tags=["posts"],
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PostPublic, "description": "Already reacted so: nothing changed"},
        400: {"description": "Thanking yourself"},
        **NOT_FOUND,
    },
)
def react(
    post_id: UUID,
    body: ReactionCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> PostPublic:
    """Like or thank a post (once per kind; repeating it changes nothing and answers 200)."""
    post = service.check_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    if not service.do_react(session=session, principal=principal, post=post, kind=body.kind):
        response.status_code = status.HTTP_200_OK
    return posts_public(session, principal, [post])[0]


@router.delete(
    "/posts/{post_id}/reactions/{kind}",
    tags=["posts"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
def unreact(
    post_id: UUID,
    kind: ReactionKind,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> None:
    post = service.check_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    service.do_unreact(session=session, principal=principal, post=post, kind=kind)


# --- articles -------------------------------------------------------------------------


@router.post(
    "/articles",
    tags=["articles"],
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "An article from a private thread in another group"},
        403: {"description": "Not a member of the group"},
        **NOT_FOUND,
    },
)
def create_article(
    body: ArticleCreate, principal: CurrentUser, session: SessionDep, identity: IdentityDep
) -> ArticlePublic:
    """Write an article (revision 1); tags are the given ones plus the body's #hashtags."""
    article = articles.do_create_article(
        session=session, principal=principal, request=body, identity=identity
    )
    return article_public(article)


@router.get("/articles", tags=["articles"])
def list_articles(
    principal: CurrentUser,
    session: SessionDep,
    author_id: UUID | None = None,
    tag: TagParam = None,
    group_id: UUID | None = None,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[ArticlePublic]:
    """Articles the caller may read, newest first."""
    items, next_cursor = service.list_readable(
        session=session,
        principal=principal,
        model=Article,
        author_id=author_id,
        tag=tag,
        group_id=group_id,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[article_public(item) for item in items], next_cursor=next_cursor)


@router.get("/articles/{article_id}", tags=["articles"], responses=READ_ONE)
def read_article(
    article_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> ArticlePublic:
    article = articles.check_article(
        session=session, principal=principal, article_id=article_id, identity=identity
    )
    response.headers["ETag"] = item_etag(article)
    return article_public(article)


@router.patch("/articles/{article_id}", tags=["articles"], responses=CHANGE)
def update_article(
    article_id: UUID,
    body: ArticleUpdate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
    if_match: IfMatch = None,
) -> ArticlePublic:
    """The author changes an article; each change is kept as a new revision."""
    article = articles.check_own_article(
        session=session, principal=principal, article_id=article_id, identity=identity
    )
    check_if_match(if_match, item_etag(article))
    article = articles.do_update_article(
        session=session, principal=principal, article=article, request=body
    )
    response.headers["ETag"] = item_etag(article)
    return article_public(article)


@router.delete(
    "/articles/{article_id}",
    tags=["articles"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=REMOVE,
)
def delete_article(
    article_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    if_match: IfMatch = None,
) -> None:
    article = articles.check_own_article(
        session=session, principal=principal, article_id=article_id, identity=identity
    )
    check_if_match(if_match, item_etag(article))
    articles.do_delete_article(session=session, article=article)


@router.get("/articles/{article_id}/revisions", tags=["articles"], responses=NOT_FOUND)
def list_revisions(
    article_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[RevisionSummary]:
    """An article's revisions, oldest first (fetch one by number for its body)."""
    article = articles.check_article(
        session=session, principal=principal, article_id=article_id, identity=identity
    )
    revisions, next_cursor = articles.list_revisions(
        session=session, article=article, cursor=cursor, limit=limit
    )
    return Page(items=[revision_summary(item) for item in revisions], next_cursor=next_cursor)


@router.get("/articles/{article_id}/revisions/{number}", tags=["articles"], responses=NOT_FOUND)
def read_revision(
    article_id: UUID,
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> RevisionPublic:
    article = articles.check_article(
        session=session, principal=principal, article_id=article_id, identity=identity
    )
    revision = articles.check_revision(session=session, article=article, number=number)
    return RevisionPublic.model_validate(revision.model_dump())


# --- internal -------------------------------------------------------------------------


@router.get(
    "/internal/content",
    tags=["internal"],
    responses={403: {"description": "Not an administrator"}},
)
def list_all_content(
    principal: CurrentUser,
    session: SessionDep,
    cursor: CursorParam = None,
    limit: PageSize = 100,
) -> Page[ContentSnapshot]:
    """Every live post and article, of every visibility, in id order (search reindexing)."""
    content.check_admin(principal)
    items, next_cursor = content.list_all_content(session=session, cursor=cursor, limit=limit)
    return Page(items=items, next_cursor=next_cursor)
