"""Every live post and article as a snapshot, for search to rebuild its index from."""

from sqlmodel import Session, col, select

from services.posts.articles import article_snapshot
from services.posts.models import Article, Post
from services.posts.service import cursor_id, post_snapshot
from shared.auth import Principal
from shared.errors import Forbidden
from shared.events.contracts import ContentSnapshot
from shared.pagination import encode_cursor


def check_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only administrators may read all content")


def list_all_content(
    *, session: Session, cursor: str | None, limit: int
) -> tuple[list[ContentSnapshot], str | None]:
    """Live posts and articles of every visibility, merged in id order."""
    after = cursor_id(cursor)
    post_query = select(Post).where(col(Post.deleted_at).is_(None))
    article_query = select(Article).where(col(Article.deleted_at).is_(None))
    if after is not None:
        post_query = post_query.where(col(Post.id) > after)
        article_query = article_query.where(col(Article.id) > after)
    posts = session.exec(post_query.order_by(col(Post.id)).limit(limit + 1)).all()
    articles = session.exec(article_query.order_by(col(Article.id)).limit(limit + 1)).all()
    snapshots = [post_snapshot(post, ContentSnapshot) for post in posts]
    snapshots += [article_snapshot(article, ContentSnapshot) for article in articles]
    snapshots.sort(key=lambda snapshot: snapshot.content_id)
    if len(snapshots) <= limit:
        return snapshots, None
    page = snapshots[:limit]
    return page, encode_cursor([str(page[-1].content_id)])
