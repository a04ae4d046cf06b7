"""Who may do what in identity: every permission check of the service, in one place.

Organisation roles (from the token, `Principal.role`): an admin runs the organisation (roles,
imports, the audit log); an analyst reads knowledge-health data (checked by posts); a member
does neither. Group roles (identity's membership rows): the owner runs the group (edits it,
changes roles, hands it over); a moderator manages plain members and hides content (posts);
a member takes part. Being an organisation admin grants no group role: a private group stays
hidden from admins who are not in it.

Refusals follow one rule: a private group is a 404 for whoever is not in it (the check that
finds it says so), and what a member may see but not do is a 403.
"""

from uuid import UUID

from sqlmodel import Session

from services.identity.models import Group, Membership
from shared.auth import Principal
from shared.errors import BadRequest, Forbidden

# How much a group role may do; a role manages only roles below its own.
GROUP_RANK = {"member": 0, "moderator": 1, "owner": 2}


def check_admin(principal: Principal, action: str) -> None:
    """Only an organisation admin does `action` (e.g. "change roles"); else 403."""
    if not principal.is_admin:
        raise Forbidden(f"only an admin may {action}")


def group_role(*, session: Session, group_id: UUID, user_id: UUID) -> str | None:
    """The person's role in the group, or None if they are not in it."""
    membership = session.get(Membership, (group_id, user_id))
    return membership.role if membership is not None else None


def _caller_role(session: Session, group: Group, principal: Principal) -> str | None:
    return group_role(session=session, group_id=group.id, user_id=principal.user_id)


def check_may_add_member(
    *, session: Session, group: Group, principal: Principal, user_id: UUID
) -> None:
    """Owners and moderators add people; anyone may join an open group themselves."""
    if user_id == principal.user_id and group.visibility == "open":
        return
    if GROUP_RANK.get(_caller_role(session, group, principal) or "", -1) < GROUP_RANK["moderator"]:
        raise Forbidden("only the group's owner or moderators can add members")


def check_may_remove_member(
    *, session: Session, group: Group, principal: Principal, target_role: str | None
) -> None:
    """Owners remove anyone but themselves; moderators remove plain members only.

    `target_role` is None when the person is not in the group (the caller then learns that
    only if they could have removed them).
    """
    caller = _caller_role(session, group, principal)
    if caller is None or GROUP_RANK[caller] < GROUP_RANK["moderator"]:
        raise Forbidden("only the group's owner or moderators can remove other members")
    if target_role == "owner":
        raise BadRequest("the owner cannot be removed; the owner transfers ownership first")
    if caller != "owner" and GROUP_RANK[target_role or "member"] >= GROUP_RANK[caller]:
        raise Forbidden("moderators remove members only; the owner manages moderators")


def check_may_leave_or_remove(
    *, session: Session, group: Group, principal: Principal, user_id: UUID, target_role: str | None
) -> None:
    """Leaving is a member's own choice; removing someone else needs a higher role."""
    if user_id == principal.user_id:
        if target_role == "owner":
            raise BadRequest("the owner cannot leave the group; transfer ownership first")
        return
    check_may_remove_member(
        session=session, group=group, principal=principal, target_role=target_role
    )


def check_group_owner(*, session: Session, group: Group, principal: Principal, action: str) -> None:
    """Only the group's owner does `action` (edit it, change roles, hand it over); else 403."""
    if _caller_role(session, group, principal) != "owner":
        raise Forbidden(f"only the group's owner may {action}")


def check_group_manager(
    *, session: Session, group: Group, principal: Principal, action: str
) -> None:
    """Only the group's owner or a moderator does `action` (e.g. decide join requests)."""
    if GROUP_RANK.get(_caller_role(session, group, principal) or "", -1) < GROUP_RANK["moderator"]:
        raise Forbidden(f"only the group's owner or moderators may {action}")


def check_audit_reader(principal: Principal) -> None:
    """The audit log is the admins' (it names who did what to whom)."""
    check_admin(principal, "read the audit log")
