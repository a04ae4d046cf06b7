"""Ending and restoring a person's access: deactivation (by an admin or SCIM) and reactivation.

Deactivation keeps the person's content (shown as from a former member) and revokes every
token they hold at once: an `AccessRevoked` event reaches every verifier within seconds.
"""

from uuid import UUID

from sqlmodel import Session

from services.identity.audit import Origin, record_audit
from services.identity.models import User
from shared.auth import Principal
from shared.errors import BadRequest, Forbidden, NotFound
from shared.events.contracts import AccessRevoked, AuditActorKind, UserDeactivated, UserReactivated
from shared.events.outbox import record_event
from shared.ids import utcnow

SOURCE = "/knowflow/identity"


def deactivate(
    session: Session,
    user: User,
    *,
    actor_id: UUID | None,
    actor_kind: AuditActorKind = "user",
    origin: Origin | None = None,
) -> bool:
    """Deactivate `user` (in the caller's transaction); False if they already were."""
    if not user.active:
        return False
    now = utcnow()
    user.active = False
    user.deactivated_at = now
    session.add(user)
    record_event(session, UserDeactivated(user_id=user.id, deactivated_at=now), source=SOURCE)
    record_event(
        session,
        AccessRevoked(user_id=user.id, not_before=now, reason="deactivated"),
        source=SOURCE,
    )
    record_audit(
        session,
        action="user.deactivated",
        target=f"user:{user.id}",
        actor_id=actor_id,
        actor_kind=actor_kind,
        origin=origin,
    )
    return True


def reactivate(
    session: Session,
    user: User,
    *,
    actor_id: UUID | None,
    actor_kind: AuditActorKind = "user",
    origin: Origin | None = None,
) -> bool:
    """Restore access (tokens issued before the deactivation stay refused); False if active."""
    if user.active:
        return False
    now = utcnow()
    user.active = True
    user.deactivated_at = None
    session.add(user)
    record_event(session, UserReactivated(user_id=user.id, reactivated_at=now), source=SOURCE)
    record_audit(
        session,
        action="user.reactivated",
        target=f"user:{user.id}",
        actor_id=actor_id,
        actor_kind=actor_kind,
        origin=origin,
    )
    return True


def check_admin_target(*, session: Session, principal: Principal, user_id: UUID) -> User:
    """The person an admin acts on: 403 for anyone else, 404 if nobody has that id."""
    if not principal.is_admin:
        raise Forbidden("only an admin deactivates or reactivates people")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def do_deactivate_user(
    *, session: Session, principal: Principal, user_id: UUID, origin: Origin
) -> User:
    """An admin ends someone's access (again: no change); never their own (a lock-out)."""
    user = check_admin_target(session=session, principal=principal, user_id=user_id)
    if user.id == principal.user_id:
        raise BadRequest("you cannot deactivate yourself")
    deactivate(session, user, actor_id=principal.user_id, origin=origin)
    return user


def do_reactivate_user(
    *, session: Session, principal: Principal, user_id: UUID, origin: Origin
) -> User:
    """An admin restores someone's access (tokens from before stay refused)."""
    user = check_admin_target(session=session, principal=principal, user_id=user_id)
    reactivate(session, user, actor_id=principal.user_id, origin=origin)
    return user
