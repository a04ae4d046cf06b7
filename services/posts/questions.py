"""Posts' rules for questions: asking, editing, deleting, accepting, closing, listing.

Functions here add rows and outbox events to the caller's session and never commit.
Anything the caller may not read is reported as missing (404), never as forbidden.
"""

from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlmodel import Session, col, select

from services.posts.access import (
    IdentityGroups,
    check_group_for_posting,
    item_visibility,
    readable_filter,
)
from services.posts.models import Answer, Comment, Question
from services.posts.parsing import parse_mentions
from services.posts.qa_common import (
    authored,
    check_manager,
    check_origin,
    check_question,
    do_add_revision,
    do_touch_question,
    existing_by_source,
    is_score,
)
from services.posts.qa_schemas import QuestionCreate, QuestionSort, QuestionUpdate
from services.posts.service import SOURCE, do_set_tags, flush_or_conflict, tagged
from shared.auth import Principal
from shared.errors import BadRequest, Conflict
from shared.events.contracts import (
    AnswerAccepted,
    AnswerDeleted,
    CommentDeleted,
    ContentKind,
    QuestionClosed,
    QuestionCreated,
    QuestionDeleted,
    QuestionSnapshot,
    QuestionUpdated,
)
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.pagination import cursor_id, cursor_time, decode_cursor, paginate, past

QuestionSnapshotT = TypeVar("QuestionSnapshotT", bound=QuestionSnapshot)
# A page of a sort is ordered by (value, id), both descending; the cursor holds both.
SORT_ATTRIBUTES = {"newest": "created_at", "activity": "last_activity_at", "votes": "score"}


def question_snapshot(question: Question, event: type[QuestionSnapshotT]) -> QuestionSnapshotT:
    """The whole current state of a question, as the contract `event` carries it."""
    return event(
        content_id=question.id,
        kind="question",
        author_id=question.author_id,
        group_id=question.group_id,
        visibility=question.visibility,
        version=question.version,
        title=question.title,
        body=question.body,
        tags=list(question.tags),
        mentions=list(question.mentions),
        parent_id=None,
        thread_id=question.id,
        source_thread_id=None,
        created_at=question.created_at,
        updated_at=question.updated_at,
        accepted_answer_id=question.accepted_answer_id,
        duplicate_of=question.duplicate_of,
    )


def check_question_manager(
    *,
    session: Session,
    principal: Principal,
    question: Question,
    identity: IdentityGroups,
    action: str,
) -> None:
    """The asker, an owner of the question's group, or an administrator; else 403."""
    check_manager(
        session=session,
        principal=principal,
        author_id=question.author_id,
        group_id=question.group_id,
        identity=identity,
        action=action,
    )


def do_create_question(
    *, session: Session, principal: Principal, request: QuestionCreate, identity: IdentityGroups
) -> tuple[Question, bool]:
    """Ask a question (revision 1); an import replaying a `source` gets the existing one."""
    check_origin(principal, request.origin)
    existing = existing_by_source(session, Question, request.origin)
    if existing is not None:
        return existing, False
    group = None
    if request.group_id is not None:
        group = check_group_for_posting(
            session=session, principal=principal, group_id=request.group_id, identity=identity
        )
    author_id, handle, at = authored(principal, request.origin)
    base_score = request.origin.score if request.origin is not None else 0
    question = Question(
        author_id=author_id,
        author_handle=handle,
        group_id=request.group_id,
        visibility=item_visibility(group),
        title=request.title,
        body=request.body,
        tags=list(request.tags),
        mentions=parse_mentions(request.body),
        base_score=base_score,
        score=base_score,
        source=request.origin.source if request.origin is not None else None,
        created_at=at,
        updated_at=at,
        last_activity_at=at,
    )
    session.add(question)
    flush_or_conflict(session)  # a concurrent import of the same source: 409, retry replays
    do_add_revision(
        session=session,
        item_id=question.id,
        number=1,
        kind="question",
        editor_id=author_id,
        title=question.title,
        body=question.body,
        tags=question.tags,
        at=at,
    )
    do_set_tags(session=session, content_id=question.id, tags=question.tags)
    record_event(session, question_snapshot(question, QuestionCreated), source=SOURCE)
    return question, True


def do_record_question_change(*, session: Session, question: Question, at: datetime) -> None:
    """Bump the version of a changed question, write it and say so (`question.updated`)."""
    question.version += 1
    question.updated_at = at
    session.add(question)
    flush_or_conflict(session)
    do_touch_question(session=session, question_id=question.id, at=at)
    record_event(session, question_snapshot(question, QuestionUpdated), source=SOURCE)


def do_update_question(
    *, session: Session, principal: Principal, question: Question, request: QuestionUpdate
) -> Question:
    """Change a question as a new revision; a change to nothing makes no revision."""
    title = request.title if request.title is not None else question.title
    body = request.body if request.body is not None else question.body
    tags = list(request.tags) if request.tags is not None else list(question.tags)
    if (title, body, tags) == (question.title, question.body, list(question.tags)):
        return question
    now = utcnow()
    question.title, question.body, question.tags = title, body, tags
    question.mentions = parse_mentions(body)
    do_add_revision(
        session=session,
        item_id=question.id,
        number=question.version + 1,
        kind="question",
        editor_id=principal.user_id,
        title=title,
        body=body,
        tags=tags,
        at=now,
    )
    # Two edits from the same version both claim the next revision number: the second is a 409.
    do_record_question_change(session=session, question=question, at=now)
    do_set_tags(session=session, content_id=question.id, tags=question.tags)
    return question


def do_delete_question(*, session: Session, question: Question) -> None:
    """Soft-delete a question with its answers and comments; consumers are told of each."""
    now = utcnow()
    answers = session.exec(
        select(Answer).where(Answer.question_id == question.id, col(Answer.deleted_at).is_(None))
    ).all()
    comments = session.exec(
        select(Comment).where(Comment.question_id == question.id, col(Comment.deleted_at).is_(None))
    ).all()
    items: list[Question | Answer | Comment] = [*comments, *answers, question]
    for item in items:
        item.deleted_at = now
        item.updated_at = now
        item.version += 1
        session.add(item)
    flush_or_conflict(session)
    deleted: dict[type, type[QuestionDeleted | AnswerDeleted | CommentDeleted]] = {
        Comment: CommentDeleted,
        Answer: AnswerDeleted,
        Question: QuestionDeleted,
    }
    for item in items:
        event = deleted[type(item)]
        kind = cast(ContentKind, type(item).__name__.lower())
        record_event(
            session,
            event(
                content_id=item.id,
                kind=kind,
                author_id=item.author_id,
                group_id=item.group_id,
                visibility=item.visibility,
                version=item.version,
                deleted_at=now,
            ),
            source=SOURCE,
        )


def do_set_accepted(
    *,
    session: Session,
    principal: Principal,
    question: Question,
    answer: Answer | None,
    accepted_by: UUID,
    at: datetime,
) -> Question:
    """Make `answer` (or none) the accepted one; says so (`answer.accepted` + `question.updated`)."""
    previous = question.accepted_answer_id
    if previous == (answer.id if answer else None):
        return question
    question.accepted_answer_id = answer.id if answer else None
    question.accepted_at = at if answer else None
    do_record_question_change(session=session, question=question, at=at)
    record_event(
        session,
        AnswerAccepted(
            question_id=question.id,
            group_id=question.group_id,
            visibility=question.visibility,
            answer_id=answer.id if answer else None,
            answer_author_id=answer.author_id if answer else None,
            previous_answer_id=previous,
            asker_id=question.author_id,
            accepted_by=accepted_by,
            version=question.version,
        ),
        source=SOURCE,
    )
    return question


def check_answer_of(*, session: Session, question: Question, answer_id: UUID) -> Answer:
    """A live answer of this question, else 400 (the body names something else)."""
    answer = session.get(Answer, answer_id)
    if answer is None or answer.deleted_at is not None or answer.question_id != question.id:
        raise BadRequest(f"answer {answer_id} is not an answer of question {question.id}")
    return answer


def do_close_as_duplicate(
    *,
    session: Session,
    principal: Principal,
    question: Question,
    duplicate_of: UUID,
    identity: IdentityGroups,
) -> Question:
    """Close a question as a duplicate of another the caller can read; linked both ways."""
    if duplicate_of == question.id:
        raise BadRequest("a question cannot be a duplicate of itself")
    original = check_question(
        session=session, principal=principal, question_id=duplicate_of, identity=identity
    )
    if question.duplicate_of is not None:
        raise Conflict(f"question {question.id} is already closed as a duplicate")
    now = utcnow()
    question.duplicate_of = original.id
    question.closed_at = now
    do_record_question_change(session=session, question=question, at=now)
    record_event(
        session,
        QuestionClosed(
            question_id=question.id,
            group_id=question.group_id,
            visibility=question.visibility,
            duplicate_of=original.id,
            closed_by=principal.user_id,
            version=question.version,
        ),
        source=SOURCE,
    )
    return question


def sort_cursor(cursor: str | None, sort: QuestionSort) -> tuple[Any, UUID] | None:
    """The (sort value, id) a list cursor points after; malformed is a 400."""
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    value, raw_id = values
    after_id = cursor_id(raw_id)
    if sort == "votes":
        if not is_score(value):
            raise BadRequest("malformed cursor")
        return value, after_id
    return cursor_time(value), after_id


def list_questions(
    *,
    session: Session,
    principal: Principal,
    tag: str | None,
    group_id: UUID | None,
    author_id: UUID | None,
    sort: QuestionSort,
    unanswered: bool | None,
    unaccepted: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Question], str | None]:
    """Live questions the caller may read, by `sort` (descending), keyset-paged."""
    attribute = SORT_ATTRIBUTES[sort]
    column = col(getattr(Question, attribute))
    query = select(Question).where(
        col(Question.deleted_at).is_(None),
        readable_filter(
            session=session,
            principal=principal,
            visibility=Question.visibility,
            group_id=Question.group_id,
        ),
    )
    if tag:
        query = query.where(col(Question.id).in_(tagged(tag)))
    if group_id is not None:
        query = query.where(Question.group_id == group_id)
    if author_id is not None:
        query = query.where(Question.author_id == author_id)
    if unanswered is not None:
        query = query.where(
            Question.answer_count == 0 if unanswered else col(Question.answer_count) > 0
        )
    if unaccepted is not None:
        accepted = col(Question.accepted_answer_id)
        query = query.where(accepted.is_(None) if unaccepted else accepted.is_not(None))
    after = sort_cursor(cursor, sort)
    if after is not None:
        query = query.where(past(column, col(Question.id), after, descending=True))
    query = query.order_by(column.desc(), col(Question.id).desc())

    def cursor_of(last: Question) -> list[Any]:
        value = getattr(last, attribute)
        return [value if sort == "votes" else value.isoformat(), str(last.id)]

    return paginate(session, query, limit=limit, cursor_of=cursor_of)
