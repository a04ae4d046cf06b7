"""Requests to join a private group: asked by anyone who knows its id, decided by its managers.

An open group is joined directly (`POST /groups/{id}/members` with one's own id); a private
one only by being added, or by a request its owner or a moderator approves. What a
requester learns is what they already knew: the group's id exists. The answers to them hold
ids and status only, never the group's name, members, or who decided.

Functions here add rows, outbox events and audit entries to the caller's session and never
commit.
"""

from typing import Any, cast
from uuid import UUID

from sqlalchemy import ColumnElement, CursorResult, case, update
from sqlmodel import Session, and_, col, or_, select

from services.identity import access
from services.identity.audit import Origin, record_audit
from services.identity.models import Group, JoinRequest, User
from services.identity.service import add_membership, check_visible_group, is_member
from shared.auth import Principal
from shared.errors import BadRequest, Conflict, NotFound
from shared.ids import utcnow
from shared.pagination import cursor_id, decode_cursor, paginate

# Pending requests come first (oldest first: a queue), then decided ones (latest request first).
_PENDING_RANK, _DECIDED_RANK = 0, 1


def _is_pending() -> ColumnElement[bool]:
    return col(JoinRequest.status) == "pending"


def do_request_to_join(
    *, session: Session, principal: Principal, group_id: UUID, message: str
) -> JoinRequest:
    """Ask to join a private group: 404 if no group has that id, 400 if it is open (join it),
    409 if already a member or already asking."""
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound(f"no group {group_id}")
    if group.visibility == "open":
        raise BadRequest("this group is open: join it directly with POST /groups/{id}/members")
    if is_member(session=session, group_id=group.id, user_id=principal.user_id):
        raise Conflict("already a member")
    pending = session.exec(
        select(JoinRequest.id).where(
            JoinRequest.group_id == group.id,
            JoinRequest.user_id == principal.user_id,
            _is_pending(),
        )
    ).first()
    if pending is not None:
        raise Conflict("a request to join this group is already pending", request_id=str(pending))
    # Two racing requests: the partial unique index keeps one (409 from `shared.db`).
    request = JoinRequest(group_id=group.id, user_id=principal.user_id, message=message)
    session.add(request)
    session.flush()
    return request


def list_for_group(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[tuple[JoinRequest, User]], str | None]:
    """The group's requests with their requesters (owner and moderators): pending first."""
    group = check_visible_group(session=session, group_id=group_id, principal=principal)
    access.check_group_manager(
        session=session, group=group, principal=principal, action="see requests to join"
    )
    rank = case((_is_pending(), _PENDING_RANK), else_=_DECIDED_RANK)
    statement = (
        select(JoinRequest, User)
        .join(User, col(User.id) == col(JoinRequest.user_id))
        .where(JoinRequest.group_id == group.id, col(User.erased_at).is_(None))
    )
    if status is not None:
        statement = statement.where(JoinRequest.status == status)
    after = decode_cursor(cursor, 2)
    if after is not None:
        after_rank, after_id = after[0], cursor_id(after[1])
        if after_rank == _PENDING_RANK and not isinstance(after_rank, bool):
            statement = statement.where(
                or_(and_(_is_pending(), col(JoinRequest.id) > after_id), ~_is_pending())
            )
        elif after_rank == _DECIDED_RANK and not isinstance(after_rank, bool):
            statement = statement.where(~_is_pending(), col(JoinRequest.id) < after_id)
        else:
            raise BadRequest("malformed cursor")
    statement = statement.order_by(
        rank, case((_is_pending(), col(JoinRequest.id))), col(JoinRequest.id).desc()
    )

    def cursor_of(last: tuple[JoinRequest, User]) -> list[Any]:
        request = last[0]
        return [_PENDING_RANK if request.status == "pending" else _DECIDED_RANK, str(request.id)]

    rows, next_cursor = paginate(session, statement, limit=limit, cursor_of=cursor_of)
    return [(request, user) for request, user in rows], next_cursor


def list_own(
    *, session: Session, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[JoinRequest], str | None]:
    """The caller's own requests, newest first."""
    statement = select(JoinRequest).where(JoinRequest.user_id == principal.user_id)
    after = decode_cursor(cursor, 1)
    if after is not None:
        statement = statement.where(col(JoinRequest.id) < cursor_id(after[0]))
    statement = statement.order_by(col(JoinRequest.id).desc())
    return paginate(session, statement, limit=limit, cursor_of=lambda row: [str(row.id)])


def do_decide(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID,
    request_id: UUID,
    approve: bool,
    origin: Origin | None = None,
) -> tuple[JoinRequest, User]:
    """The owner or a moderator approves (the person becomes a member) or declines; once."""
    group = check_visible_group(session=session, group_id=group_id, principal=principal)
    access.check_group_manager(
        session=session, group=group, principal=principal, action="decide requests to join"
    )
    request = session.exec(
        select(JoinRequest).where(JoinRequest.id == request_id, JoinRequest.group_id == group.id)
    ).first()
    if request is None:
        raise NotFound(f"no request {request_id} to join this group")
    if request.status != "pending":
        raise Conflict(f"this request was already {request.status}")
    # Decided only if still pending when written: two managers deciding at once decide once
    # (PostgreSQL re-checks the row once the first commits; SQLite has one writer at a time).
    decided = session.execute(
        update(JoinRequest)
        .where(col(JoinRequest.id) == request.id, col(JoinRequest.status) == "pending")
        .values(
            status="approved" if approve else "declined",
            decided_at=utcnow(),
            decided_by=principal.user_id,
        )
    )
    if cast(CursorResult[Any], decided).rowcount != 1:
        raise Conflict("this request was decided meanwhile")
    session.refresh(request)
    # Added meanwhile by a manager: approving records the decision, the membership stands.
    if approve and not is_member(session=session, group_id=group.id, user_id=request.user_id):
        add_membership(
            session=session,
            group=group,
            user_id=request.user_id,
            role="member",
            added_by=principal.user_id,
        )
    record_audit(
        session,
        action=f"group.join_request_{request.status}",
        target=f"group:{group.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"request_id": str(request.id), "user_id": str(request.user_id)},
    )
    user = session.get(User, request.user_id)
    assert user is not None  # a foreign key
    return request, user


def remove_for_user(*, session: Session, user_id: UUID) -> int:
    """Delete a person's requests (their erasure); how many there were."""
    requests = session.exec(select(JoinRequest).where(JoinRequest.user_id == user_id)).all()
    for request in requests:
        session.delete(request)
    return len(requests)
