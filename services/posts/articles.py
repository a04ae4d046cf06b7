"""Posts' rules for stock articles: revisions, and articles formalized from threads.

Functions here add rows and outbox events to the caller's session and never commit.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session, col, select

from services.posts.access import (
    IdentityGroups,
    check_group_for_posting,
    item_visibility,
)
from services.posts.models import Answer, Article, ArticleRevision, Comment, Post, Question
from services.posts.parsing import MAX_TAGS, parse_mentions, parse_tags, unique
from services.posts.schemas import ARTICLE_BODY_MAX, ArticleCreate, ArticleUpdate
from services.posts.service import (
    SOURCE,
    SnapshotT,
    check_own,
    check_post,
    check_readable,
    do_set_tags,
    flush_or_conflict,
    list_thread,
)
from shared.auth import Principal
from shared.errors import BadRequest, Conflict, NotFound
from shared.events.contracts import (
    ArticleCreated,
    ArticleDeleted,
    ArticleUpdated,
    Visibility,
)
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.observability import forwarded_prefix_var
from shared.pagination import decode_cursor, paginate


def article_snapshot(article: Article, event: type[SnapshotT]) -> SnapshotT:
    """The whole current state of an article, as the contract `event` carries it."""
    return event(
        content_id=article.id,
        kind="article",
        author_id=article.author_id,
        group_id=article.group_id,
        visibility=article.visibility,
        version=article.version,
        title=article.title,
        body=article.body,
        tags=list(article.tags),
        mentions=list(article.mentions),
        parent_id=None,
        thread_id=None,
        source_thread_id=article.source_thread_id or article.source_question_id,
        created_at=article.created_at,
        updated_at=article.updated_at,
    )


def check_article(
    *, session: Session, principal: Principal, article_id: UUID, identity: IdentityGroups
) -> Article:
    return check_readable(
        session=session, principal=principal, model=Article, item_id=article_id, identity=identity
    )


def check_own_article(
    *, session: Session, principal: Principal, article_id: UUID, identity: IdentityGroups
) -> Article:
    return check_own(
        session=session, principal=principal, model=Article, item_id=article_id, identity=identity
    )


def check_thread_root(
    *, session: Session, principal: Principal, post_id: UUID, identity: IdentityGroups
) -> Post:
    """The live root of the thread `post_id` belongs to, if the caller may read it."""
    post = check_post(session=session, principal=principal, post_id=post_id, identity=identity)
    if post.parent_id is None:
        return post
    return check_post(
        session=session, principal=principal, post_id=post.thread_id, identity=identity
    )


def _article_place(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID | None,
    thread: Post | Question | None,
    identity: IdentityGroups,
) -> tuple[UUID | None, Visibility]:
    """Where a new article lives; one from a private thread stays in that thread's group."""
    if thread is not None:
        if thread.visibility == "private" and group_id not in (None, thread.group_id):
            raise BadRequest("an article from a private thread stays in the thread's group")
        if group_id is None:
            group_id = thread.group_id
    if group_id is None:
        return None, "public"
    group = check_group_for_posting(
        session=session, principal=principal, group_id=group_id, identity=identity
    )
    return group_id, item_visibility(group)


def _add_revision(*, session: Session, article: Article, editor_id: UUID) -> None:
    session.add(
        ArticleRevision(
            article_id=article.id,
            number=article.version,
            editor_id=editor_id,
            title=article.title,
            body=article.body,
            tags=list(article.tags),
            created_at=article.updated_at,
        )
    )


def contributor(user_id: UUID, handle: str) -> dict[str, str]:
    return {"user_id": str(user_id), "handle": handle}


def credited(authors: list[tuple[UUID, str]]) -> list[dict[str, str]]:
    """Each author once, in the order they first appear (a known handle wins over none)."""
    handles: dict[UUID, str] = {}
    for user_id, handle in authors:
        if not handles.get(user_id):
            handles[user_id] = handle
    return [contributor(user_id, handle) for user_id, handle in handles.items()]


def do_create_article(
    *,
    session: Session,
    principal: Principal,
    request: ArticleCreate,
    identity: IdentityGroups,
    question: Question | None = None,
    contributors: list[dict[str, str]] | None = None,
) -> Article:
    """Write an article as revision 1; its tags are the given ones plus its #hashtags."""
    thread: Post | Question | None = question
    if request.source_thread_id is not None and question is None:
        thread = check_thread_root(
            session=session,
            principal=principal,
            post_id=request.source_thread_id,
            identity=identity,
        )
    group_id, visibility = _article_place(
        session=session,
        principal=principal,
        group_id=request.group_id,
        thread=thread,
        identity=identity,
    )
    article = Article(
        author_id=principal.user_id,
        author_handle=principal.handle,
        group_id=group_id,
        visibility=visibility,
        title=request.title,
        body=request.body,
        given_tags=list(request.tags),
        tags=unique([*request.tags, *parse_tags(request.body)], MAX_TAGS),
        mentions=parse_mentions(request.body),
        source_thread_id=thread.id if isinstance(thread, Post) else None,
        source_question_id=question.id if question else None,
        contributors=contributors or [contributor(principal.user_id, principal.handle)],
    )
    session.add(article)
    session.flush()
    _add_revision(session=session, article=article, editor_id=principal.user_id)
    do_set_tags(session=session, content_id=article.id, tags=article.tags)
    record_event(session, article_snapshot(article, ArticleCreated), source=SOURCE)
    return article


def do_update_article(
    *, session: Session, principal: Principal, article: Article, request: ArticleUpdate
) -> Article:
    """Change an article as a new revision; a change to nothing makes no revision."""
    title = request.title if request.title is not None else article.title
    body = request.body if request.body is not None else article.body
    given_tags = list(request.tags) if request.tags is not None else list(article.given_tags)
    if (title, body, given_tags) == (article.title, article.body, list(article.given_tags)):
        return article
    article.title = title
    article.body = body
    article.given_tags = given_tags
    article.tags = unique([*given_tags, *parse_tags(body)], MAX_TAGS)
    article.mentions = parse_mentions(body)
    article.version += 1
    article.updated_at = utcnow()
    session.add(article)
    _add_revision(session=session, article=article, editor_id=principal.user_id)
    # Two edits from the same revision both claim the next number: the second is a 409.
    flush_or_conflict(session)
    do_set_tags(session=session, content_id=article.id, tags=article.tags)
    record_event(session, article_snapshot(article, ArticleUpdated), source=SOURCE)
    return article


def do_delete_article(*, session: Session, article: Article) -> None:
    """Soft-delete an article (its revisions are kept, but no longer readable)."""
    now = utcnow()
    article.deleted_at = now
    article.updated_at = now
    article.version += 1
    session.add(article)
    flush_or_conflict(session)
    record_event(
        session,
        ArticleDeleted(
            content_id=article.id,
            kind="article",
            author_id=article.author_id,
            group_id=article.group_id,
            visibility=article.visibility,
            version=article.version,
            deleted_at=now,
        ),
        source=SOURCE,
    )


def list_revisions(
    *, session: Session, article: Article, cursor: str | None, limit: int
) -> tuple[list[ArticleRevision], str | None]:
    """An article's revisions, oldest first."""
    values = decode_cursor(cursor, 1)
    query = select(ArticleRevision).where(ArticleRevision.article_id == article.id)
    if values is not None:
        if not isinstance(values[0], int):
            raise BadRequest("malformed cursor")
        query = query.where(col(ArticleRevision.number) > values[0])
    query = query.order_by(col(ArticleRevision.number))
    return paginate(session, query, limit=limit, cursor_of=lambda row: [row.number])


def check_revision(*, session: Session, article: Article, number: int) -> ArticleRevision:
    revision = session.get(ArticleRevision, (article.id, number))
    if revision is None:
        raise NotFound(f"article {article.id} has no revision {number}")
    return revision


def compose_thread(posts: list[Post]) -> str:
    """A thread as Markdown: each post under its author's handle (or id) and time."""
    parts = []
    for index, post in enumerate(posts):
        author = post.author_handle or str(post.author_id)
        verb = "wrote" if index == 0 else "replied"
        written = post.created_at.strftime("%Y-%m-%d %H:%M UTC")
        # The handle is bold, not "@handle": formalizing is not mentioning the authors.
        parts.append(f"**{author}** {verb} ({written}):\n\n{post.body.strip()}")
    return "\n\n---\n\n".join(parts)


def do_formalize(
    *,
    session: Session,
    principal: Principal,
    post_id: UUID,
    title: str,
    identity: IdentityGroups,
) -> Article:
    """Make an article from the thread `post_id` belongs to, linked back to the thread."""
    root = check_thread_root(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    check_not_formalized(
        session=session, existing=select(Article).where(Article.source_thread_id == root.id)
    )
    thread = list_thread(session=session, root=root)
    body = compose_thread(thread)
    if len(body) > ARTICLE_BODY_MAX:
        raise BadRequest(f"the thread is longer than an article may be ({ARTICLE_BODY_MAX})")
    request = ArticleCreate(title=title, body=body, source_thread_id=root.id)
    authors = [(post.author_id, post.author_handle) for post in thread]
    return do_create_article(
        session=session,
        principal=principal,
        request=request,
        identity=identity,
        contributors=credited([*authors, (principal.user_id, principal.handle)]),
    )


class AlreadyFormalized(Conflict):
    """A thread is formalized once; the answer points at its article."""

    def __init__(self, article_id: UUID) -> None:
        super().__init__(
            f"this thread is already formalized as article {article_id}", article_id=str(article_id)
        )
        self.headers = {"Location": f"{forwarded_prefix_var.get()}/articles/{article_id}"}


def check_not_formalized(*, session: Session, existing: Any) -> None:
    """409 pointing at the live article a thread was already formalized as, if any."""
    article = session.exec(existing.where(col(Article.deleted_at).is_(None))).first()
    if article is not None:
        raise AlreadyFormalized(article.id)


def compose_question(
    question: Question, answers: list[Answer], comments: dict[UUID, list[Comment]]
) -> str:
    """A question thread as Markdown: the question, its answers (accepted first), comments."""

    def by(handle: str, author_id: UUID, verb: str, at: datetime) -> str:
        written = at.strftime("%Y-%m-%d %H:%M UTC")
        return f"**{handle or author_id}** {verb} ({written}):"

    def notes(parent_id: UUID) -> list[str]:
        return [
            f"> {by(c.author_handle, c.author_id, 'commented', c.created_at)} {c.body.strip()}"
            for c in comments.get(parent_id, [])
        ]

    parts = [
        "\n\n".join(
            [
                by(question.author_handle, question.author_id, "asked", question.created_at),
                f"### {question.title}",
                question.body.strip(),
                *notes(question.id),
            ]
        )
    ]
    for answer in answers:
        verb = "answered (accepted)" if answer.id == question.accepted_answer_id else "answered"
        parts.append(
            "\n\n".join(
                [
                    by(answer.author_handle, answer.author_id, verb, answer.created_at),
                    answer.body.strip(),
                    *notes(answer.id),
                ]
            )
        )
    return "\n\n---\n\n".join(parts)


def do_formalize_question(
    *,
    session: Session,
    principal: Principal,
    question: Question,
    answers: list[Answer],
    comments: dict[UUID, list[Comment]],
    title: str,
    identity: IdentityGroups,
) -> Article:
    """Make an article of a (readable) question thread, crediting every author in it."""
    check_not_formalized(
        session=session,
        existing=select(Article).where(Article.source_question_id == question.id),
    )
    body = compose_question(question, answers, comments)
    if len(body) > ARTICLE_BODY_MAX:
        raise BadRequest(f"the thread is longer than an article may be ({ARTICLE_BODY_MAX})")
    authors = [(question.author_id, question.author_handle)]
    for answer in answers:
        authors.append((answer.author_id, answer.author_handle))
    for thread_comments in comments.values():
        authors += [(comment.author_id, comment.author_handle) for comment in thread_comments]
    return do_create_article(
        session=session,
        principal=principal,
        request=ArticleCreate(title=title, body=body, tags=list(question.tags)),
        identity=identity,
        question=question,
        contributors=credited([*authors, (principal.user_id, principal.handle)]),
    )
