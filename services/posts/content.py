"""Every live post, article, question, answer and comment as a snapshot, for search to
rebuild its index from."""

from typing import TypeVar

from sqlmodel import Session, col, select

from services.posts.answers import answer_snapshot, comment_snapshot
from services.posts.articles import article_snapshot
from services.posts.models import Answer, Article, Comment, Post, Question
from services.posts.questions import question_snapshot
from services.posts.service import cursor_id, post_snapshot
from shared.auth import Principal
from shared.db import in_list
from shared.errors import Forbidden
from shared.events.contracts import ContentSnapshot, QuestionSnapshot
from shared.pagination import encode_cursor

Row = TypeVar("Row", Post, Article, Question, Answer, Comment)


def check_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only administrators may read all content")


def list_all_content(
    *, session: Session, cursor: str | None, limit: int
) -> tuple[list[ContentSnapshot], str | None]:
    """Live content of every kind and visibility, merged in id order."""
    after = cursor_id(cursor)

    def page(model: type[Row]) -> list[Row]:
        query = select(model).where(col(model.deleted_at).is_(None))
        if after is not None:
            query = query.where(col(model.id) > after)
        return list(session.exec(query.order_by(col(model.id)).limit(limit + 1)).all())

    answers = page(Answer)
    asked = {answer.question_id for answer in answers}
    questions = {
        question.id: question
        for question in session.exec(select(Question).where(in_list(Question.id, asked))).all()
    }
    snapshots: list[ContentSnapshot] = [post_snapshot(post, ContentSnapshot) for post in page(Post)]
    snapshots += [article_snapshot(article, ContentSnapshot) for article in page(Article)]
    snapshots += [question_snapshot(question, QuestionSnapshot) for question in page(Question)]
    snapshots += [
        answer_snapshot(answer, questions[answer.question_id], ContentSnapshot)
        for answer in answers
    ]
    snapshots += [comment_snapshot(comment, ContentSnapshot) for comment in page(Comment)]
    snapshots.sort(key=lambda snapshot: snapshot.content_id)
    if len(snapshots) <= limit:
        return snapshots, None
    first = snapshots[:limit]
    return first, encode_cursor([str(first[-1].content_id)])
