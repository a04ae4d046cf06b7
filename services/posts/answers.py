"""Posts' rules for answers and comments on questions.

Functions here add rows and outbox events to the caller's session and never commit.
An answer or comment is readable exactly when its question is.
"""

from collections import defaultdict
from uuid import UUID

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from services.posts.access import IdentityGroups, check_group_for_posting
from services.posts.models import Answer, Comment, Question
from services.posts.parsing import parse_mentions
from services.posts.qa_common import (
    SCORE_MAX,
    authored,
    check_manager,
    check_origin,
    check_question,
    do_add_revision,
    do_count_answer,
    do_touch_question,
    existing_by_source,
    is_score,
)
from services.posts.qa_schemas import AnswerCreate, CommentCreate
from services.posts.questions import do_set_accepted
from services.posts.service import SOURCE, flush_or_conflict
from shared.auth import Principal
from shared.db import in_list
from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.events.contracts import (
    AnswerCreated,
    AnswerDeleted,
    AnswerUpdated,
    CommentCreated,
    CommentDeleted,
    CommentUpdated,
    ContentSnapshot,
)
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.pagination import cursor_id, cursor_time, decode_cursor, encode_cursor

# Before every answer in (score desc, created asc, id asc): the cursor of a page ending
# with the accepted answer.
AFTER_ACCEPTED = [SCORE_MAX, "0001-01-01T00:00:00+00:00", "00000000-0000-0000-0000-000000000000"]


def check_may_write(
    *, session: Session, principal: Principal, question: Question, identity: IdentityGroups
) -> None:
    """Writing in a group's question needs membership of the group (403, or 404 if private)."""
    if question.group_id is not None:
        check_group_for_posting(
            session=session, principal=principal, group_id=question.group_id, identity=identity
        )


# --- answers --------------------------------------------------------------------------


def answer_snapshot(
    answer: Answer, question: Question, event: type[ContentSnapshot]
) -> ContentSnapshot:
    """An answer's whole state; it carries its question's title and tags, for ranking."""
    return event(
        content_id=answer.id,
        kind="answer",
        author_id=answer.author_id,
        group_id=answer.group_id,
        visibility=answer.visibility,
        version=answer.version,
        title=question.title,
        body=answer.body,
        tags=list(question.tags),
        mentions=list(answer.mentions),
        parent_id=question.id,
        thread_id=question.id,
        created_at=answer.created_at,
        updated_at=answer.updated_at,
    )


def check_answer(
    *, session: Session, principal: Principal, answer_id: UUID, identity: IdentityGroups
) -> tuple[Answer, Question]:
    """A live answer whose question the caller may read, with the question; else 404."""
    answer = session.get(Answer, answer_id)
    if answer is None or answer.deleted_at is not None:
        raise NotFound(f"no answer {answer_id}")
    try:
        question = check_question(
            session=session, principal=principal, question_id=answer.question_id, identity=identity
        )
    except NotFound:
        raise NotFound(f"no answer {answer_id}") from None
    return answer, question


def do_create_answer(
    *,
    session: Session,
    principal: Principal,
    question: Question,
    request: AnswerCreate,
    identity: IdentityGroups,
) -> tuple[Answer, bool]:
    """Answer a question (revision 1); an import replaying a `source` gets the existing one."""
    check_origin(principal, request.origin)
    existing = existing_by_source(session, Answer, request.origin)
    if existing is not None:
        return existing, False
    if question.duplicate_of is not None:
        raise Conflict("the question is closed as a duplicate; answer the original")
    check_may_write(session=session, principal=principal, question=question, identity=identity)
    author_id, handle, at = authored(principal, request.origin)
    base_score = request.origin.score if request.origin is not None else 0
    answer = Answer(
        question_id=question.id,
        author_id=author_id,
        author_handle=handle,
        group_id=question.group_id,
        visibility=question.visibility,
        body=request.body,
        mentions=parse_mentions(request.body),
        base_score=base_score,
        score=base_score,
        source=request.origin.source if request.origin is not None else None,
        created_at=at,
        updated_at=at,
    )
    session.add(answer)
    flush_or_conflict(session)
    do_add_revision(
        session=session,
        item_id=answer.id,
        number=1,
        kind="answer",
        editor_id=author_id,
        title=None,
        body=answer.body,
        tags=[],
        at=at,
    )
    do_count_answer(session=session, question_id=question.id, delta=1)
    do_touch_question(session=session, question_id=question.id, at=at)
    record_event(session, answer_snapshot(answer, question, AnswerCreated), source=SOURCE)
    return answer, True


def check_answer_manager(
    *, session: Session, principal: Principal, answer: Answer, identity: IdentityGroups
) -> None:
    check_manager(
        session=session,
        principal=principal,
        author_id=answer.author_id,
        group_id=answer.group_id,
        identity=identity,
        action="change this answer",
    )


def do_update_answer(
    *, session: Session, principal: Principal, answer: Answer, question: Question, body: str
) -> Answer:
    """Replace an answer's body as a new revision."""
    if body == answer.body:
        return answer
    now = utcnow()
    answer.body = body
    answer.mentions = parse_mentions(body)
    do_add_revision(
        session=session,
        item_id=answer.id,
        number=answer.version + 1,
        kind="answer",
        editor_id=principal.user_id,
        title=None,
        body=body,
        tags=[],
        at=now,
    )
    answer.version += 1
    answer.updated_at = now
    session.add(answer)
    flush_or_conflict(session)
    do_touch_question(session=session, question_id=question.id, at=now)
    record_event(session, answer_snapshot(answer, question, AnswerUpdated), source=SOURCE)
    return answer


def do_delete_answer(
    *, session: Session, principal: Principal, answer: Answer, question: Question
) -> None:
    """Soft-delete an answer and its comments; an accepted one stops being accepted."""
    now = utcnow()
    comments = session.exec(
        select(Comment).where(Comment.parent_id == answer.id, col(Comment.deleted_at).is_(None))
    ).all()
    items: list[Answer | Comment] = [*comments, answer]
    for item in items:
        item.deleted_at = now
        item.updated_at = now
        item.version += 1
        session.add(item)
    flush_or_conflict(session)
    do_count_answer(session=session, question_id=question.id, delta=-1)
    for comment in comments:
        record_event(session, comment_deleted(comment), source=SOURCE)
    record_event(
        session,
        AnswerDeleted(
            content_id=answer.id,
            kind="answer",
            author_id=answer.author_id,
            group_id=answer.group_id,
            visibility=answer.visibility,
            version=answer.version,
            deleted_at=now,
        ),
        source=SOURCE,
    )
    if question.accepted_answer_id == answer.id:
        do_set_accepted(
            session=session,
            principal=principal,
            question=question,
            answer=None,
            accepted_by=principal.user_id,
            at=now,
        )


def list_answers(
    *, session: Session, question: Question, cursor: str | None, limit: int
) -> tuple[list[Answer], str | None]:
    """A question's live answers: the accepted one first, then by score, then oldest."""
    values = decode_cursor(cursor, 3)
    query = select(Answer).where(
        Answer.question_id == question.id, col(Answer.deleted_at).is_(None)
    )
    accepted: list[Answer] = []
    if values is None:
        if question.accepted_answer_id is not None:
            accepted = list(
                session.exec(query.where(Answer.id == question.accepted_answer_id)).all()
            )
    else:
        if not is_score(values[0]):
            raise BadRequest("malformed cursor")
        score = values[0]
        created_at = cursor_time(values[1])
        after_id = cursor_id(values[2])
        query = query.where(
            or_(
                col(Answer.score) < score,
                and_(
                    col(Answer.score) == score,
                    or_(
                        col(Answer.created_at) > created_at,
                        and_(col(Answer.created_at) == created_at, col(Answer.id) > after_id),
                    ),
                ),
            )
        )
    if question.accepted_answer_id is not None:
        query = query.where(Answer.id != question.accepted_answer_id)
    query = query.order_by(
        col(Answer.score).desc(), col(Answer.created_at).asc(), col(Answer.id).asc()
    )
    rest_limit = limit - len(accepted)
    rest = list(session.exec(query.limit(rest_limit + 1)).all())
    rows = [*accepted, *rest[:rest_limit]]
    if len(rest) <= rest_limit:
        return rows, None
    last = rows[-1]
    if last.id == question.accepted_answer_id:
        return rows, encode_cursor(AFTER_ACCEPTED)
    return rows, encode_cursor([last.score, last.created_at.isoformat(), str(last.id)])


# --- comments -------------------------------------------------------------------------


def comment_snapshot(comment: Comment, event: type[ContentSnapshot]) -> ContentSnapshot:
    return event(
        content_id=comment.id,
        kind="comment",
        author_id=comment.author_id,
        group_id=comment.group_id,
        visibility=comment.visibility,
        version=comment.version,
        title=None,
        body=comment.body,
        tags=[],
        mentions=list(comment.mentions),
        parent_id=comment.parent_id,
        thread_id=comment.question_id,
        created_at=comment.created_at,
        updated_at=comment.updated_at,
    )


def comment_deleted(comment: Comment) -> CommentDeleted:
    return CommentDeleted(
        content_id=comment.id,
        kind="comment",
        author_id=comment.author_id,
        group_id=comment.group_id,
        visibility=comment.visibility,
        version=comment.version,
        deleted_at=comment.updated_at,
    )


def check_comment(
    *, session: Session, principal: Principal, comment_id: UUID, identity: IdentityGroups
) -> Comment:
    """A live comment whose question the caller may read; else 404."""
    comment = session.get(Comment, comment_id)
    if comment is None or comment.deleted_at is not None:
        raise NotFound(f"no comment {comment_id}")
    try:
        check_question(
            session=session, principal=principal, question_id=comment.question_id, identity=identity
        )
    except NotFound:
        raise NotFound(f"no comment {comment_id}") from None
    return comment


def check_own_comment(
    *, session: Session, principal: Principal, comment_id: UUID, identity: IdentityGroups
) -> Comment:
    """A comment the caller wrote (or any, for an administrator); 403 otherwise."""
    comment = check_comment(
        session=session, principal=principal, comment_id=comment_id, identity=identity
    )
    if comment.author_id != principal.user_id and not principal.is_admin:
        raise Forbidden("only the author or an administrator may change this comment")
    return comment


def do_create_comment(
    *,
    session: Session,
    principal: Principal,
    question: Question,
    parent_id: UUID,
    parent_kind: str,
    request: CommentCreate,
    identity: IdentityGroups,
) -> tuple[Comment, bool]:
    """Comment on a question or one of its answers; an import replay gets the existing one."""
    check_origin(principal, request.origin)
    existing = existing_by_source(session, Comment, request.origin)
    if existing is not None:
        return existing, False
    check_may_write(session=session, principal=principal, question=question, identity=identity)
    author_id, handle, at = authored(principal, request.origin)
    comment = Comment(
        parent_id=parent_id,
        parent_kind=parent_kind,
        question_id=question.id,
        author_id=author_id,
        author_handle=handle,
        group_id=question.group_id,
        visibility=question.visibility,
        body=request.body,
        mentions=parse_mentions(request.body),
        source=request.origin.source if request.origin is not None else None,
        created_at=at,
        updated_at=at,
    )
    session.add(comment)
    flush_or_conflict(session)
    do_touch_question(session=session, question_id=question.id, at=at)
    record_event(session, comment_snapshot(comment, CommentCreated), source=SOURCE)
    return comment, True


def do_update_comment(*, session: Session, comment: Comment, body: str) -> Comment:
    if body == comment.body:
        return comment
    comment.body = body
    comment.mentions = parse_mentions(body)
    comment.version += 1
    comment.updated_at = utcnow()
    session.add(comment)
    flush_or_conflict(session)
    record_event(session, comment_snapshot(comment, CommentUpdated), source=SOURCE)
    return comment


def do_delete_comment(*, session: Session, comment: Comment) -> None:
    now = utcnow()
    comment.deleted_at = now
    comment.updated_at = now
    comment.version += 1
    session.add(comment)
    flush_or_conflict(session)
    record_event(session, comment_deleted(comment), source=SOURCE)


def comments_of(*, session: Session, parent_ids: list[UUID]) -> dict[UUID, list[Comment]]:
    """The live comments of each parent, oldest first (one query)."""
    if not parent_ids:
        return {}
    rows = session.exec(
        select(Comment)
        .where(in_list(Comment.parent_id, parent_ids), col(Comment.deleted_at).is_(None))
        .order_by(col(Comment.created_at), col(Comment.id))
    ).all()
    found: dict[UUID, list[Comment]] = defaultdict(list)
    for comment in rows:
        found[comment.parent_id].append(comment)
    return found
