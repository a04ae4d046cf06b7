"""Posts' rules for flow posts and replies, reactions, and the full-content listing.

Functions here add rows and outbox events to the caller's session and never commit.
Anything the caller may not read is reported as missing (404), never as forbidden.
"""

from collections import defaultdict
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import func, insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, delete, select
from sqlmodel.sql.expression import SelectOfScalar

from services.posts.access import (
    IdentityGroups,
    can_read,
    check_group_for_posting,
    item_visibility,
    may_see_hidden,
    readable_filter,
    unhidden_filter,
)
from services.posts.models import Article, ContentTag, Post, PostKind, Reaction, ReactionKind
from services.posts.parsing import parse_mentions, parse_tags
from services.posts.schemas import PostCreate
from shared.auth import Principal
from shared.db import in_list, is_database_unavailable
from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.events.contracts import (
    ContentSnapshot,
    PostCreated,
    PostDeleted,
    PostUpdated,
    ReactionAdded,
    ReactionEvent,
    ReactionRemoved,
)
from shared.events.outbox import record_event
from shared.ids import new_id, utcnow
from shared.pagination import decode_cursor, paginate

SOURCE = "/knowflow/posts"

SnapshotT = TypeVar("SnapshotT", bound=ContentSnapshot)
RowT = TypeVar("RowT")


# --- helpers shared with articles -----------------------------------------------------


def cursor_id(cursor: str | None) -> UUID | None:
    """The id a cursor made by `next_cursor` points after; malformed is a 400."""
    values = decode_cursor(cursor, 1)
    if values is None:
        return None
    try:
        return UUID(str(values[0]))
    except ValueError:
        raise BadRequest("malformed cursor") from None


def page_by_id(
    *,
    session: Session,
    query: SelectOfScalar[RowT],
    id_column: Any,
    cursor: str | None,
    limit: int,
    newest_first: bool,
) -> tuple[list[RowT], str | None]:
    """One keyset page ordered by a UUIDv7 id (creation order), and the next cursor."""
    after = cursor_id(cursor)
    if after is not None:
        query = query.where(id_column < after if newest_first else id_column > after)
    query = query.order_by(id_column.desc() if newest_first else id_column.asc())
    return paginate(session, query, limit=limit, cursor_of=lambda row: [str(cast(Any, row).id)])


def do_set_tags(*, session: Session, content_id: UUID, tags: list[str]) -> None:
    """Replace the indexed tags of one post or article."""
    session.exec(delete(ContentTag).where(col(ContentTag.content_id) == content_id))
    for tag in tags:
        session.add(ContentTag(content_id=content_id, tag=tag))


def tagged(tag: str) -> Any:
    """A subquery of the content ids carrying `tag`."""
    return select(ContentTag.content_id).where(ContentTag.tag == tag.lower().removeprefix("#"))


def flush_or_conflict(session: Session) -> None:
    """Flush now, so a concurrent change to the same row is a 409 rather than a 500."""
    try:
        session.flush()
    except (IntegrityError, OperationalError, StaleDataError) as exc:
        if is_database_unavailable(exc):
            raise  # an outage is a 503 (shared.web), not a conflict
        # StaleDataError: the row's version moved since it was read (see models' version guard).
        raise Conflict("the item changed concurrently; retry") from exc


# --- snapshots ------------------------------------------------------------------------


def post_snapshot(post: Post, event: type[SnapshotT]) -> SnapshotT:
    """The whole current state of a post, as the contract `event` carries it."""
    hidden = post.hidden_at is not None
    return event(
        content_id=post.id,
        kind=post.kind,
        author_id=post.author_id,
        group_id=post.group_id,
        visibility=post.visibility,
        version=post.version,
        title=None,
        # A hidden post's text goes nowhere (consumers drop it) until it is shown again.
        body="" if hidden else post.body,
        tags=[] if hidden else list(post.tags),
        mentions=[] if hidden else list(post.mentions),
        parent_id=post.parent_id,
        thread_id=post.thread_id,
        source_thread_id=None,
        created_at=post.created_at,
        updated_at=post.updated_at,
        hidden=hidden,
    )


# --- posts ----------------------------------------------------------------------------


Content = TypeVar("Content", Post, Article)


def check_readable(
    *,
    session: Session,
    principal: Principal,
    model: type[Content],
    item_id: UUID,
    identity: IdentityGroups,
) -> Content:
    """A live post or article the caller may read, or 404 (existence is not confirmed).

    A hidden post is readable only by those who may see hidden content in its group.
    """
    item = session.get(model, item_id)
    if (
        item is None
        or item.deleted_at is not None
        or not can_read(
            session=session,
            principal=principal,
            group_id=item.group_id,
            visibility=item.visibility,
            identity=identity,
        )
        or (
            isinstance(item, Post)
            and item.hidden_at is not None
            and not may_see_hidden(
                session=session, principal=principal, group_id=item.group_id, identity=identity
            )
        )
    ):
        raise NotFound(f"no {model.__name__.lower()} {item_id}")
    return item


def check_own(
    *,
    session: Session,
    principal: Principal,
    model: type[Content],
    item_id: UUID,
    identity: IdentityGroups,
) -> Content:
    """A post or article the caller wrote (404 if unreadable, 403 if someone else's)."""
    item = check_readable(
        session=session, principal=principal, model=model, item_id=item_id, identity=identity
    )
    if item.author_id != principal.user_id:
        raise Forbidden(f"only the author can change this {model.__name__.lower()}")
    return item


def check_post(
    *, session: Session, principal: Principal, post_id: UUID, identity: IdentityGroups
) -> Post:
    return check_readable(
        session=session, principal=principal, model=Post, item_id=post_id, identity=identity
    )


def check_own_post(
    *, session: Session, principal: Principal, post_id: UUID, identity: IdentityGroups
) -> Post:
    return check_own(
        session=session, principal=principal, model=Post, item_id=post_id, identity=identity
    )


def do_create_post(
    *, session: Session, principal: Principal, request: PostCreate, identity: IdentityGroups
) -> Post:
    """Write a post, or a reply that joins its parent's thread, group and visibility."""
    parent: Post | None = None
    group_id = request.group_id
    if request.parent_id is not None:
        parent = check_post(
            session=session, principal=principal, post_id=request.parent_id, identity=identity
        )
        if group_id is not None and group_id != parent.group_id:
            raise BadRequest("a reply stays in its thread's group")
        group_id = parent.group_id
    group = None
    if group_id is not None:
        group = check_group_for_posting(
            session=session, principal=principal, group_id=group_id, identity=identity
        )
    post_id = new_id()
    post = Post(
        id=post_id,
        kind="reply" if parent else "post",
        author_id=principal.user_id,
        author_handle=principal.handle,
        group_id=group_id,
        visibility=parent.visibility if parent else item_visibility(group),
        body=request.body,
        tags=parse_tags(request.body),
        mentions=parse_mentions(request.body),
        parent_id=parent.id if parent else None,
        thread_id=parent.thread_id if parent else post_id,
    )
    # One round of inserts: the post and its tags (a new post has none to replace) as two
    # statements, not through the unit of work (it sorted and diffed every object), and
    # the outbox row at commit.
    session.execute(insert(Post.__table__), [post.model_dump()])  # type: ignore[attr-defined]
    if post.tags:
        session.execute(
            insert(ContentTag.__table__),  # type: ignore[attr-defined]
            [{"content_id": post.id, "tag": tag} for tag in post.tags],
        )
    record_event(session, post_snapshot(post, PostCreated), source=SOURCE)
    return post


def do_update_post(*, session: Session, post: Post, body: str) -> Post:
    """Replace a post's body; its tags and mentions follow, and its version goes up."""
    if body == post.body:
        return post
    post.body = body
    post.tags = parse_tags(body)
    post.mentions = parse_mentions(body)
    post.version += 1
    post.updated_at = utcnow()
    session.add(post)
    flush_or_conflict(session)
    do_set_tags(session=session, content_id=post.id, tags=post.tags)
    record_event(session, post_snapshot(post, PostUpdated), source=SOURCE)
    return post


def do_delete_post(*, session: Session, post: Post) -> None:
    """Soft-delete a post: it disappears from every read, and consumers are told."""
    now = utcnow()
    post.deleted_at = now
    post.updated_at = now
    post.version += 1
    session.add(post)
    flush_or_conflict(session)
    record_event(
        session,
        PostDeleted(
            content_id=post.id,
            kind=post.kind,
            author_id=post.author_id,
            group_id=post.group_id,
            visibility=post.visibility,
            version=post.version,
            deleted_at=now,
        ),
        source=SOURCE,
    )


def list_readable(
    *,
    session: Session,
    principal: Principal,
    model: type[Content],
    author_id: UUID | None,
    tag: str | None,
    group_id: UUID | None,
    cursor: str | None,
    limit: int,
    kind: PostKind | None = None,
) -> tuple[list[Content], str | None]:
    """Live posts or articles the caller may read, newest first."""
    query = select(model).where(
        col(model.deleted_at).is_(None),
        readable_filter(
            session=session,
            principal=principal,
            visibility=model.visibility,
            group_id=model.group_id,
        ),
    )
    if author_id is not None:
        query = query.where(model.author_id == author_id)
    if group_id is not None:
        query = query.where(model.group_id == group_id)
    if model is Post:
        query = query.where(
            unhidden_filter(
                session=session,
                principal=principal,
                hidden_at=Post.hidden_at,
                group_id=Post.group_id,
            )
        )
    if kind is not None:
        query = query.where(Post.kind == kind)
    if tag:
        query = query.where(col(model.id).in_(tagged(tag)))
    return page_by_id(
        session=session,
        query=query,
        id_column=col(model.id),
        cursor=cursor,
        limit=limit,
        newest_first=True,
    )


def list_replies(
    *, session: Session, principal: Principal, post: Post, cursor: str | None, limit: int
) -> tuple[list[Post], str | None]:
    """Live direct replies to a (readable) post, oldest first (hidden ones for moderators)."""
    query = select(Post).where(
        Post.parent_id == post.id,
        col(Post.deleted_at).is_(None),
        unhidden_filter(
            session=session, principal=principal, hidden_at=Post.hidden_at, group_id=Post.group_id
        ),
    )
    return page_by_id(
        session=session,
        query=query,
        id_column=col(Post.id),
        cursor=cursor,
        limit=limit,
        newest_first=False,
    )


def list_thread(*, session: Session, root: Post) -> list[Post]:
    """The live, shown posts of a thread, root first, in the order they were written."""
    return list(
        session.exec(
            select(Post)
            .where(
                Post.thread_id == root.thread_id,
                col(Post.deleted_at).is_(None),
                col(Post.hidden_at).is_(None),
            )
            .order_by(col(Post.id))
        ).all()
    )


def formalized_as(
    *, session: Session, principal: Principal, post_ids: list[UUID]
) -> dict[UUID, list[UUID]]:
    """For each thread root, the readable articles formalized from it (one query)."""
    if not post_ids:
        return {}
    rows = session.exec(
        select(Article.source_thread_id, Article.id)
        .where(
            in_list(Article.source_thread_id, post_ids),
            col(Article.deleted_at).is_(None),
            readable_filter(
                session=session,
                principal=principal,
                visibility=Article.visibility,
                group_id=Article.group_id,
            ),
        )
        .order_by(col(Article.id))
    ).all()
    links: dict[UUID, list[UUID]] = defaultdict(list)
    for thread_id, article_id in rows:
        if thread_id is not None:
            links[thread_id].append(article_id)
    return links


# --- reactions ------------------------------------------------------------------------


def do_react(*, session: Session, principal: Principal, post: Post, kind: ReactionKind) -> bool:
    """Add the caller's reaction (idempotent); returns whether it is new."""
    if kind == "thanks" and post.author_id == principal.user_id:
        raise BadRequest("you cannot thank yourself")
    if session.get(Reaction, (post.id, principal.user_id, kind)) is not None:
        return False
    session.add(Reaction(post_id=post.id, user_id=principal.user_id, kind=kind))
    flush_or_conflict(session)
    record_event(session, reaction_event(ReactionAdded, post, principal, kind), source=SOURCE)
    return True


def do_unreact(*, session: Session, principal: Principal, post: Post, kind: ReactionKind) -> None:
    """Remove the caller's reaction, if there is one."""
    reaction = session.get(Reaction, (post.id, principal.user_id, kind))
    if reaction is not None:
        session.delete(reaction)
        record_event(session, reaction_event(ReactionRemoved, post, principal, kind), source=SOURCE)


def reaction_event(
    event: type[ReactionEvent], post: Post, principal: Principal, kind: ReactionKind
) -> ReactionEvent:
    return event(
        content_id=post.id,
        author_id=post.author_id,
        user_id=principal.user_id,
        kind=kind,
        group_id=post.group_id,
        visibility=post.visibility,
    )


def reaction_counts(*, session: Session, post_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Reactions per kind for each post (one query)."""
    if not post_ids:
        return {}
    rows = session.exec(
        select(Reaction.post_id, Reaction.kind, func.count())
        .where(in_list(Reaction.post_id, post_ids))
        .group_by(col(Reaction.post_id), col(Reaction.kind))
    ).all()
    counts: dict[UUID, dict[str, int]] = defaultdict(dict)
    for post_id, kind, count in rows:
        counts[post_id][kind] = int(count)
    return counts


def own_reactions(
    *, session: Session, principal: Principal, post_ids: list[UUID]
) -> dict[UUID, list[str]]:
    """The caller's reaction kinds for each post (one query)."""
    if not post_ids:
        return {}
    rows = session.exec(
        select(Reaction.post_id, Reaction.kind)
        .where(in_list(Reaction.post_id, post_ids), Reaction.user_id == principal.user_id)
        .order_by(col(Reaction.kind))
    ).all()
    kinds: dict[UUID, list[str]] = defaultdict(list)
    for post_id, kind in rows:
        kinds[post_id].append(kind)
    return kinds


def reply_counts(*, session: Session, post_ids: list[UUID]) -> dict[UUID, int]:
    """Live, shown direct replies of each post (one query; hidden ones are not counted)."""
    if not post_ids:
        return {}
    rows = session.exec(
        select(Post.parent_id, func.count())
        .where(
            in_list(Post.parent_id, post_ids),
            col(Post.deleted_at).is_(None),
            col(Post.hidden_at).is_(None),
        )
        .group_by(col(Post.parent_id))
    ).all()
    return {parent_id: int(count) for parent_id, count in rows if parent_id is not None}
