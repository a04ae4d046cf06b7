"""Roles: an admin changes a person's organisation role; a group's owner edits the group,
changes members' roles and hands the group over.

Functions here add rows, outbox events and audit entries to the caller's session and never
commit. Each change that changes nothing (the role it already has) records nothing.
"""

from uuid import UUID

from sqlmodel import Session, col, select

from services.identity import access
from services.identity.audit import Origin, record_audit
from services.identity.models import Group, Membership, User
from services.identity.role_schemas import GroupUpdate
from services.identity.service import (
    SOURCE,
    _next_membership_version,
    check_user,
    check_visible_group,
)
from shared.auth import Principal
from shared.errors import BadRequest, Conflict, NotFound
from shared.events.contracts import (
    AccessRevoked,
    GroupMemberAdded,
    GroupRole,
    GroupUpdated,
    OrganisationRole,
    OrganisationRoleChanged,
)
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.preconditions import flush_versioned


def _other_active_admins(*, session: Session, user_id: UUID) -> int:
    """Active admins besides `user_id`, their rows locked so two demotions cannot both pass."""
    admins = session.exec(
        select(User.id)
        .where(User.role == "admin", col(User.active).is_(True), User.id != user_id)
        .with_for_update()
    ).all()
    return len(admins)


def do_change_organisation_role(
    *,
    session: Session,
    principal: Principal,
    user_id: UUID,
    role: OrganisationRole,
    origin: Origin | None = None,
) -> User:
    """An admin gives a person a role; the last active admin keeps theirs (409).

    The person's tokens carry their old role, so they are revoked (`AccessRevoked`): the
    next token is issued with the new role.
    """
    access.check_admin(principal, "change roles")
    user = check_user(session=session, user_id=user_id)
    if user.role == role:
        return user
    if user.role == "admin" and _other_active_admins(session=session, user_id=user.id) == 0:
        raise Conflict("the last admin cannot be demoted; make someone else admin first")
    previous, now = user.role, utcnow()
    user.role = role
    session.add(user)
    flush_versioned(session)
    # Counted again after the write, which holds SQLite's write lock (it has no FOR UPDATE):
    # two admins demoting each other at once leave one admin, never none.
    if previous == "admin" and _other_active_admins(session=session, user_id=user.id) == 0:
        raise Conflict("the last admin cannot be demoted; make someone else admin first")
    record_event(
        session, OrganisationRoleChanged(user_id=user.id, role=role, changed_at=now), source=SOURCE
    )
    record_event(
        session,
        AccessRevoked(user_id=user.id, not_before=now, reason="role_changed"),
        source=SOURCE,
    )
    record_audit(
        session,
        action="user.role_changed",
        target=f"user:{user.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"from": previous, "to": role},
    )
    return user


def _membership(*, session: Session, group: Group, user_id: UUID) -> Membership:
    membership = session.get(Membership, (group.id, user_id))
    if membership is None:
        raise NotFound("not a member")
    return membership


def _set_member_role(
    *, session: Session, group: Group, membership: Membership, role: GroupRole, by: UUID
) -> None:
    """Give a member a role and tell the other services (the membership's next version)."""
    version = _next_membership_version(
        session=session, group_id=group.id, user_id=membership.user_id
    )
    membership.role = role
    session.add(membership)
    record_event(
        session,
        GroupMemberAdded(
            group_id=group.id,
            visibility=group.visibility,
            user_id=membership.user_id,
            role=role,
            version=version,
            added_by=by,
        ),
        source=SOURCE,
    )


def do_change_member_role(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID,
    user_id: UUID,
    role: GroupRole,
    origin: Origin | None = None,
) -> Membership:
    """The owner makes a member a moderator or back; ownership moves by transfer only."""
    group = check_visible_group(session=session, group_id=group_id, principal=principal)
    access.check_group_owner(
        session=session, group=group, principal=principal, action="change roles"
    )
    if role == "owner":
        raise BadRequest("ownership is handed over by transferring it")
    membership = _membership(session=session, group=group, user_id=user_id)
    if membership.role == "owner":
        raise BadRequest("the owner's role changes by transferring ownership")
    if membership.role == role:
        return membership
    previous = membership.role
    _set_member_role(
        session=session, group=group, membership=membership, role=role, by=principal.user_id
    )
    record_audit(
        session,
        action="group.member_role_changed",
        target=f"group:{group.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"user_id": str(user_id), "from": previous, "to": role},
    )
    return membership


def _record_group_updated(session: Session, group: Group) -> None:
    record_event(
        session,
        GroupUpdated(
            group_id=group.id,
            visibility=group.visibility,
            slug=group.slug,
            name=group.name,
            description=group.description,
            owner_id=group.owner_id,
        ),
        source=SOURCE,
    )


def do_update_group(
    *,
    session: Session,
    principal: Principal,
    group: Group,
    update: GroupUpdate,
    origin: Origin | None = None,
) -> Group:
    """The owner renames the group or changes its description."""
    access.check_group_owner(session=session, group=group, principal=principal, action="edit it")
    changes = update.model_dump(exclude_unset=True, exclude_none=True)
    changed = {name: value for name, value in changes.items() if getattr(group, name) != value}
    if not changed:
        return group
    for name, value in changed.items():
        setattr(group, name, value)
    group.version += 1
    session.add(group)
    flush_versioned(session)
    _record_group_updated(session, group)
    record_audit(
        session,
        action="group.updated",
        target=f"group:{group.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"changed": ",".join(sorted(changed))},
    )
    return group


def do_transfer_ownership(
    *,
    session: Session,
    principal: Principal,
    group: Group,
    new_owner_id: UUID,
    previous_owner_role: GroupRole,
    origin: Origin | None = None,
) -> Group:
    """The owner hands the group to one of its members and stays as moderator or member."""
    access.check_group_owner(
        session=session, group=group, principal=principal, action="transfer ownership"
    )
    if previous_owner_role == "owner":
        raise BadRequest("a group has one owner: stay as moderator or member")
    if new_owner_id == principal.user_id:
        raise BadRequest("you already own this group")
    successor = session.get(Membership, (group.id, new_owner_id))
    if successor is None:
        raise BadRequest("the new owner must be a member of the group")
    outgoing = _membership(session=session, group=group, user_id=principal.user_id)
    group.owner_id = new_owner_id
    group.version += 1
    session.add(group)
    flush_versioned(session)
    _set_member_role(
        session=session, group=group, membership=successor, role="owner", by=principal.user_id
    )
    _set_member_role(
        session=session,
        group=group,
        membership=outgoing,
        role=previous_owner_role,
        by=principal.user_id,
    )
    _record_group_updated(session, group)
    record_audit(
        session,
        action="group.ownership_transferred",
        target=f"group:{group.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={
            "from": str(principal.user_id),
            "to": str(new_owner_id),
            "previous_owner_role": previous_owner_role,
        },
    )
    return group
