"""What questions, answers, comments and votes share: origins, counters, revisions, managers.

Functions here add rows to the caller's session and never commit.
"""

from datetime import UTC, datetime
from typing import TypeVar, cast
from uuid import UUID

from sqlalchemy import Table, update
from sqlmodel import Session, col, select

from services.posts.access import IdentityGroups, can_read, is_group_owner
from services.posts.models import Answer, Comment, QARevision, Question
from services.posts.qa_schemas import Origin
from shared.auth import Principal
from shared.errors import BadRequest, Forbidden, NotFound
from shared.ids import utcnow
from shared.pagination import decode_cursor, paginate

# Scores are 32-bit integers (PostgreSQL INTEGER): a cursor holding another is forged.
SCORE_MAX = 2**31 - 1
QUESTION_TABLE = cast(Table, Question.__table__)  # type: ignore[attr-defined]
ANSWER_TABLE = cast(Table, Answer.__table__)  # type: ignore[attr-defined]


def is_score(value: object) -> bool:
    """Whether a cursor value can be a score (an int the column holds, not a bool)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and -SCORE_MAX - 1 <= value <= SCORE_MAX
    )


def check_origin(principal: Principal, origin: Origin | None) -> None:
    """Only an administrator may write an item as someone else, at another time."""
    if origin is not None and not principal.is_admin:
        raise Forbidden("only administrators may send `origin` (imports)")


def authored(principal: Principal, origin: Origin | None) -> tuple[UUID, str, datetime]:
    """Who wrote an item and when: the caller now, or the origin's author at its time."""
    if origin is None:
        return principal.user_id, principal.handle, utcnow()
    # Posts learns handles from tokens; for an imported author the importer names it.
    return origin.author_id, origin.author_handle, origin.created_at.astimezone(UTC)


Item = TypeVar("Item", Question, Answer, Comment)


def existing_by_source(session: Session, model: type[Item], origin: Origin | None) -> Item | None:
    """The item an earlier import with the same `source` created, if any."""
    if origin is None:
        return None
    return session.exec(select(model).where(col(model.source) == origin.source)).first()


def check_question(
    *, session: Session, principal: Principal, question_id: UUID, identity: IdentityGroups
) -> Question:
    """A live question the caller may read, or 404 (existence is not confirmed)."""
    question = session.get(Question, question_id)
    if (
        question is None
        or question.deleted_at is not None
        or not can_read(
            session=session,
            principal=principal,
            group_id=question.group_id,
            visibility=question.visibility,
            identity=identity,
        )
    ):
        raise NotFound(f"no question {question_id}")
    return question


def check_manager(
    *,
    session: Session,
    principal: Principal,
    author_id: UUID,
    group_id: UUID | None,
    identity: IdentityGroups,
    action: str,
) -> None:
    """The author, an owner of the item's group, or an administrator; else 403."""
    if principal.user_id == author_id or principal.is_admin:
        return
    if is_group_owner(session=session, principal=principal, group_id=group_id, identity=identity):
        return
    raise Forbidden(f"only the author, a group owner or an administrator may {action}")


def do_touch_question(*, session: Session, question_id: UUID, at: datetime) -> None:
    """Move a question's last activity forward to `at` (never back); atomic."""
    session.execute(
        update(QUESTION_TABLE)
        .where(QUESTION_TABLE.c.id == question_id, QUESTION_TABLE.c.last_activity_at < at)
        .values(last_activity_at=at)
    )


def do_count_answer(*, session: Session, question_id: UUID, delta: int) -> None:
    """Change a question's live answer count by `delta`; atomic."""
    session.execute(
        update(QUESTION_TABLE)
        .where(QUESTION_TABLE.c.id == question_id)
        .values(answer_count=QUESTION_TABLE.c.answer_count + delta)
    )


def do_add_revision(
    *,
    session: Session,
    item_id: UUID,
    number: int,
    kind: str,
    editor_id: UUID,
    title: str | None,
    body: str,
    tags: list[str],
    at: datetime,
) -> None:
    session.add(
        QARevision(
            item_id=item_id,
            number=number,
            kind=kind,
            editor_id=editor_id,
            title=title,
            body=body,
            tags=list(tags),
            created_at=at,
        )
    )


def list_revisions(
    *, session: Session, item_id: UUID, cursor: str | None, limit: int
) -> tuple[list[QARevision], str | None]:
    """An item's revisions, oldest first."""
    values = decode_cursor(cursor, 1)
    query = select(QARevision).where(QARevision.item_id == item_id)
    if values is not None:
        if not isinstance(values[0], int):
            raise BadRequest("malformed cursor")
        query = query.where(col(QARevision.number) > values[0])
    query = query.order_by(col(QARevision.number))
    return paginate(session, query, limit=limit, cursor_of=lambda row: [row.number])


def check_revision(*, session: Session, item_id: UUID, number: int) -> QARevision:
    revision = session.get(QARevision, (item_id, number))
    if revision is None:
        raise NotFound(f"{item_id} has no revision {number}")
    return revision
