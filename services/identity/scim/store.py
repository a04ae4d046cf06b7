"""SCIM resources onto identity's rows: users, groups, memberships, and their SCIM links.

Functions here add rows, outbox events and audit entries to the caller's session and never
commit. Changes go through identity's own functions (deactivate/reactivate, profile updates,
membership add/remove), so a SCIM change emits the same events as any other.
"""

import re
import secrets
from typing import Any, cast
from uuid import UUID

from pydantic import ValidationError
from scim2_models import (
    Email,
    GroupMember,
    GroupMembership,
    InvalidValueException,
    Meta,
    NotFoundException,
    UniquenessException,
)
from scim2_models import Group as ScimGroup
from scim2_models import User as ScimUser
from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from services.identity import accounts, service
from services.identity.audit import Origin, record_audit
from services.identity.models import Group, Membership, ScimClient, ScimLink, User
from services.identity.schemas import ProfileUpdate
from shared.db import in_list
from shared.events.contracts import (
    AuditActorKind,
    GroupCreated,
    GroupUpdated,
    UserContactUpdated,
    UserRegistered,
)
from shared.events.outbox import record_event
from shared.ids import utcnow

SOURCE = "/knowflow/identity"
PLACEHOLDER_DOMAIN = "provisioned.invalid"
ACTOR_KIND: AuditActorKind = "provisioning_client"


def _audit(session: Session, client: ScimClient, action: str, target: str, origin: Origin) -> None:
    record_audit(
        session,
        action=action,
        target=target,
        actor_id=client.id,
        actor_kind=ACTOR_KIND,
        origin=origin,
        details={"client": client.name},
    )


def _link(session: Session, kind: str, resource_id: UUID) -> ScimLink | None:
    return session.get(ScimLink, (kind, resource_id))


def _touch(session: Session, kind: str, resource_id: UUID) -> ScimLink:
    link = _link(session, kind, resource_id)
    if link is None:
        link = ScimLink(kind=kind, resource_id=resource_id)
    else:
        link.version += 1
    link.updated_at = utcnow()
    session.add(link)
    return link


def _meta(kind: str, resource_id: UUID, created: Any, link: ScimLink | None, base: str) -> Meta:
    return Meta(
        resource_type=kind,
        created=created,
        last_modified=link.updated_at if link is not None else created,
        location=f"{base}/{kind}s/{resource_id}",
        version=f'W/"{link.version if link is not None else 1}"',
    )


# --- users ---------------------------------------------------------------------------------


def _user_name(user: User, link: ScimLink | None) -> str:
    return link.user_name if link is not None and link.user_name else user.handle


def _to_user(user: User, link: ScimLink | None, groups: list[Group], base: str) -> ScimUser:
    has_email = not user.email.endswith(".invalid")
    return ScimUser(
        id=str(user.id),
        external_id=link.external_id if link is not None else None,
        user_name=_user_name(user, link),
        display_name=user.display_name,
        active=user.active,
        emails=[Email(value=user.email)] if has_email else None,
        groups=[
            GroupMembership(
                value=str(group.id), ref=f"{base}/Groups/{group.id}", display=group.name
            )
            for group in groups
        ]
        or None,
        meta=_meta("User", user.id, user.created_at, link, base),
    )


def _visible_user(session: Session, user_id: UUID) -> tuple[User, ScimLink | None]:
    user = session.get(User, user_id)
    link = _link(session, "User", user_id)
    if user is None or user.erased_at is not None or (link and link.deleted_at):
        raise NotFoundException(detail=f"no user {user_id}")
    return user, link


def _scim_groups_of(session: Session, user_ids: list[UUID]) -> dict[UUID, list[Group]]:
    rows = session.exec(
        select(Membership.user_id, Group)
        .join(Group, col(Group.id) == col(Membership.group_id))
        .join(
            ScimLink,
            and_(col(ScimLink.kind) == "Group", col(ScimLink.resource_id) == col(Group.id)),
        )
        .where(in_list(Membership.user_id, user_ids), col(ScimLink.deleted_at).is_(None))
        .order_by(col(Group.name))
    ).all()
    groups: dict[UUID, list[Group]] = {}
    for user_id, group in rows:
        groups.setdefault(user_id, []).append(group)
    return groups


def user_resource(*, session: Session, user_id: UUID, base: str) -> ScimUser:
    """The SCIM view of a user, or SCIM 404 (erased or SCIM-deleted users are gone)."""
    user, link = _visible_user(session, user_id)
    return _to_user(user, link, _scim_groups_of(session, [user_id]).get(user_id, []), base)


def _check_user_name_free(session: Session, user_name: str, user_id: UUID | None) -> None:
    wanted = user_name.lower()
    taken_link = session.exec(
        select(ScimLink).where(ScimLink.kind == "User", func.lower(ScimLink.user_name) == wanted)
    ).first()
    if taken_link is not None and taken_link.resource_id != user_id:
        raise UniquenessException(detail=f"userName {user_name!r} is taken")
    taken_handle = session.exec(
        select(User)
        .outerjoin(
            ScimLink, and_(col(ScimLink.kind) == "User", col(ScimLink.resource_id) == User.id)
        )
        .where(
            func.lower(User.handle) == wanted,
            col(ScimLink.user_name).is_(None),
            col(ScimLink.deleted_at).is_(None),
        )
    ).first()
    if taken_handle is not None and taken_handle.id != user_id:
        raise UniquenessException(detail=f"userName {user_name!r} is taken")


def _check_external_id_free(
    session: Session, kind: str, external_id: str | None, resource_id: UUID | None
) -> None:
    if external_id is None:
        return
    taken = session.exec(
        select(ScimLink).where(ScimLink.kind == kind, ScimLink.external_id == external_id)
    ).first()
    if taken is not None and taken.resource_id != resource_id:
        raise UniquenessException(detail=f"externalId {external_id!r} is taken")


def _primary_email(resource: ScimUser) -> str | None:
    emails = resource.emails or []
    chosen = next((email for email in emails if email.primary), emails[0] if emails else None)
    if chosen is None or not chosen.value:
        return None
    value = str(chosen.value).strip().lower()
    if "@" not in value or len(value) > 254 or value.endswith(".invalid"):
        raise InvalidValueException(detail=f"emails: {chosen.value!r} is not an address")
    return value


def _check_email_free(session: Session, email: str, user_id: UUID | None) -> None:
    taken = session.exec(select(User).where(User.email == email)).first()
    if taken is not None and taken.id != user_id:
        raise UniquenessException(detail="that e-mail address belongs to another user")


def _new_handle(session: Session, user_name: str) -> str:
    """A handle (`[a-z0-9_]{2,32}`) from the userName: its local part, unique."""
    stem = re.sub(r"[^a-z0-9_]+", "_", user_name.split("@")[0].lower()).strip("_")[:24]
    stem = stem if len(stem) >= 2 else "user"
    handle = stem
    while session.exec(select(User).where(User.handle == handle)).first() is not None:
        handle = f"{stem}_{secrets.token_hex(3)}"
    return handle


def _display_name(resource: ScimUser | ScimGroup, fallback: str) -> str:
    name = (resource.display_name or "").strip() or fallback
    try:
        return cast(str, ProfileUpdate(display_name=name).display_name)
    except ValidationError as exc:
        raise InvalidValueException(detail=f"displayName: {exc.errors()[0]['msg']}") from None


def _required_user_name(resource: ScimUser) -> str:
    user_name = (resource.user_name or "").strip()
    if not user_name or len(user_name) > 254 or not user_name.isprintable():
        raise InvalidValueException(detail="userName is required (printable, at most 254)")
    return user_name


def do_create_user(
    *, session: Session, client: ScimClient, resource: ScimUser, origin: Origin
) -> UUID:
    """Provision an account: no password (it signs in through single sign-on)."""
    user_name = _required_user_name(resource)
    _check_user_name_free(session, user_name, None)
    _check_external_id_free(session, "User", resource.external_id, None)
    email = _primary_email(resource)
    if email is not None:
        _check_email_free(session, email, None)
    user = User(
        handle=_new_handle(session, user_name),
        email="",
        password_hash="",
        display_name=_display_name(resource, user_name),
    )
    user.email = email or f"scim-{user.id}@{PLACEHOLDER_DOMAIN}"
    session.add(user)
    session.flush()
    session.add(
        ScimLink(
            kind="User", resource_id=user.id, external_id=resource.external_id, user_name=user_name
        )
    )
    record_event(
        session,
        UserRegistered(user_id=user.id, handle=user.handle, display_name=user.display_name),
        source=SOURCE,
    )
    if email is not None:
        record_event(
            session,
            UserContactUpdated(user_id=user.id, email=email, changed_at=user.created_at),
            source=SOURCE,
        )
    _audit(session, client, "scim.user.created", f"user:{user.id}", origin)
    if resource.active is False:
        accounts.deactivate(session, user, actor_id=client.id, actor_kind=ACTOR_KIND, origin=origin)
    return user.id


def do_write_user(
    *, session: Session, client: ScimClient, user_id: UUID, resource: ScimUser, origin: Origin
) -> None:
    """Make the user what `resource` says (PUT, or the result of a PATCH)."""
    user, link = _visible_user(session, user_id)
    user_name = _required_user_name(resource)
    if user_name != _user_name(user, link):
        _check_user_name_free(session, user_name, user.id)
    _check_external_id_free(session, "User", resource.external_id, user.id)
    email = _primary_email(resource)
    if email is None and not user.email.endswith(".invalid"):
        # The address was removed: a placeholder nobody can receive mail at.
        email = f"scim-{user.id}@{PLACEHOLDER_DOMAIN}"
    if email is not None and email != user.email:
        _check_email_free(session, email, user.id)
        user.email = email
        session.add(user)
        record_event(
            session,
            UserContactUpdated(user_id=user.id, email=email, changed_at=utcnow()),
            source=SOURCE,
        )
    display_name = _display_name(resource, user_name)
    if display_name != user.display_name:
        service.do_update_profile(
            session=session, user=user, update=ProfileUpdate(display_name=display_name)
        )
    link = _touch(session, "User", user.id)
    link.external_id = resource.external_id
    link.user_name = user_name
    if resource.active is False:
        accounts.deactivate(session, user, actor_id=client.id, actor_kind=ACTOR_KIND, origin=origin)
    elif resource.active is True:
        accounts.reactivate(session, user, actor_id=client.id, actor_kind=ACTOR_KIND, origin=origin)
    _audit(session, client, "scim.user.updated", f"user:{user.id}", origin)


def do_delete_user(*, session: Session, client: ScimClient, user_id: UUID, origin: Origin) -> None:
    """Deprovision: access ends (deactivation) and SCIM forgets the user; content stays.

    Erasing personal data is the GDPR erasure's work, not SCIM's.
    """
    user, _link_row = _visible_user(session, user_id)
    accounts.deactivate(session, user, actor_id=client.id, actor_kind=ACTOR_KIND, origin=origin)
    link = _touch(session, "User", user.id)
    link.deleted_at = utcnow()
    # Free what identifies the person, so they can be provisioned again (a rehire).
    link.user_name = None
    link.external_id = None
    if not user.email.endswith(".invalid"):
        user.email = f"scim-{user.id}@{PLACEHOLDER_DOMAIN}"
        session.add(user)
        record_event(
            session,
            UserContactUpdated(user_id=user.id, email=user.email, changed_at=utcnow()),
            source=SOURCE,
        )
    _audit(session, client, "scim.user.deleted", f"user:{user.id}", origin)


# --- groups --------------------------------------------------------------------------------


def _visible_group(session: Session, group_id: UUID) -> tuple[Group, ScimLink]:
    group = session.get(Group, group_id)
    link = _link(session, "Group", group_id)
    if group is None or link is None or link.deleted_at is not None:
        raise NotFoundException(detail=f"no group {group_id}")
    return group, link


def _to_group(group: Group, link: ScimLink, member_ids: list[UUID], base: str) -> ScimGroup:
    return ScimGroup(
        id=str(group.id),
        external_id=link.external_id,
        display_name=group.name,
        members=[
            GroupMember(value=str(member), ref=f"{base}/Users/{member}", type="User")
            for member in member_ids
        ]
        or None,
        meta=_meta("Group", group.id, group.created_at, link, base),
    )


def _member_ids(session: Session, group_ids: list[UUID]) -> dict[UUID, list[UUID]]:
    rows = session.exec(
        select(Membership.group_id, Membership.user_id)
        .where(in_list(Membership.group_id, group_ids))
        .order_by(col(Membership.created_at), col(Membership.user_id))
    ).all()
    members: dict[UUID, list[UUID]] = {}
    for group_id, user_id in rows:
        members.setdefault(group_id, []).append(user_id)
    return members


def group_resource(*, session: Session, group_id: UUID, base: str) -> ScimGroup:
    group, link = _visible_group(session, group_id)
    return _to_group(group, link, _member_ids(session, [group_id]).get(group_id, []), base)


def _slug(name: str) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50] or "group"
    return f"{stem}-{secrets.token_hex(3)}" if len(stem) >= 2 else f"group-{secrets.token_hex(3)}"


def _wanted_members(session: Session, resource: ScimGroup) -> list[UUID]:
    wanted: list[UUID] = []
    for member in resource.members or []:
        if member.type not in (None, "User"):
            raise InvalidValueException(detail="members: only users can be members")
        try:
            user_id = UUID(str(member.value))
        except ValueError:
            raise InvalidValueException(detail=f"members: no user {member.value!r}") from None
        try:
            _visible_user(session, user_id)
        except NotFoundException:
            raise InvalidValueException(detail=f"members: no user {user_id}") from None
        if user_id not in wanted:
            wanted.append(user_id)
    return wanted


def _set_members(
    session: Session, client: ScimClient, group: Group, wanted: list[UUID], origin: Origin
) -> None:
    """Add and remove memberships (identity's functions: the same events as any change)."""
    current = {
        membership.user_id: membership
        for membership in session.exec(
            select(Membership).where(Membership.group_id == group.id)
        ).all()
    }
    for user_id, membership in current.items():
        if user_id not in wanted:
            service.remove_membership(session=session, group=group, membership=membership)
            _audit(session, client, "scim.group.member_removed", f"group:{group.id}", origin)
    for user_id in wanted:
        if user_id not in current:
            service.add_membership(
                session=session,
                group=group,
                user_id=user_id,
                role="member",
                added_by=client.created_by,
            )
            _audit(session, client, "scim.group.member_added", f"group:{group.id}", origin)


def do_create_group(
    *, session: Session, client: ScimClient, resource: ScimGroup, origin: Origin
) -> UUID:
    """A private group owned by the admin who created the client; SCIM owns its members."""
    name = _display_name(resource, "")
    _check_external_id_free(session, "Group", resource.external_id, None)
    wanted = _wanted_members(session, resource)
    group = Group(slug=_slug(name), name=name, visibility="private", owner_id=client.created_by)
    session.add(group)
    session.flush()
    session.add(ScimLink(kind="Group", resource_id=group.id, external_id=resource.external_id))
    record_event(
        session,
        GroupCreated(
            group_id=group.id,
            visibility="private",
            slug=group.slug,
            name=group.name,
            owner_id=group.owner_id,
        ),
        source=SOURCE,
    )
    _audit(session, client, "scim.group.created", f"group:{group.id}", origin)
    _set_members(session, client, group, wanted, origin)
    return group.id


def do_write_group(
    *, session: Session, client: ScimClient, group_id: UUID, resource: ScimGroup, origin: Origin
) -> None:
    group, _link_row = _visible_group(session, group_id)
    name = _display_name(resource, "")
    _check_external_id_free(session, "Group", resource.external_id, group.id)
    wanted = _wanted_members(session, resource)
    if name != group.name:
        group.name = name
        session.add(group)
        record_event(
            session,
            GroupUpdated(
                group_id=group.id,
                visibility="private" if group.visibility == "private" else "open",
                slug=group.slug,
                name=group.name,
                description=group.description,
                owner_id=group.owner_id,
            ),
            source=SOURCE,
        )
    link = _touch(session, "Group", group.id)
    link.external_id = resource.external_id
    _audit(session, client, "scim.group.updated", f"group:{group.id}", origin)
    _set_members(session, client, group, wanted, origin)


def do_delete_group(
    *, session: Session, client: ScimClient, group_id: UUID, origin: Origin
) -> None:
    """Every member leaves (removal events) and SCIM forgets the group; its content stays."""
    group, _link_row = _visible_group(session, group_id)
    _set_members(session, client, group, [], origin)
    link = _touch(session, "Group", group.id)
    link.deleted_at = utcnow()
    _audit(session, client, "scim.group.deleted", f"group:{group.id}", origin)


# --- listing -------------------------------------------------------------------------------


def page(
    *,
    session: Session,
    kind: str,
    terms: list[tuple[str, str]],
    offset: int,
    limit: int | None,
    base: str,
) -> tuple[int, list[Any]]:
    """(total, resources) of the users or groups matching every `attribute eq value` term."""
    if kind == "User":
        return _page_users(session, terms, offset, limit, base)
    return _page_groups(session, terms, offset, limit, base)


def _id_term(column: Any, value: str) -> Any:
    try:
        return column == UUID(value)
    except ValueError:
        return column.is_(None)  # a primary key is never null: no match


def _page_users(
    session: Session, terms: list[tuple[str, str]], offset: int, limit: int | None, base: str
) -> tuple[int, list[Any]]:
    joined = and_(col(ScimLink.kind) == "User", col(ScimLink.resource_id) == User.id)
    conditions: list[Any] = [col(User.erased_at).is_(None), col(ScimLink.deleted_at).is_(None)]
    for name, value in terms:
        if name == "username":
            user_name = func.coalesce(ScimLink.user_name, User.handle)
            conditions.append(func.lower(user_name) == value.lower())
        elif name == "externalid":
            conditions.append(ScimLink.external_id == value)
        elif name == "displayname":
            conditions.append(func.lower(User.display_name) == value.lower())
        else:
            conditions.append(_id_term(User.id, value))
    total = session.exec(
        select(func.count()).select_from(User).outerjoin(ScimLink, joined).where(*conditions)
    ).one()
    query = (
        select(User, ScimLink)
        .outerjoin(ScimLink, joined)
        .where(*conditions)
        .order_by(col(User.created_at), col(User.id))
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.exec(query).all()
    groups = _scim_groups_of(session, [user.id for user, _link_row in rows])
    return total, [_to_user(user, link, groups.get(user.id, []), base) for user, link in rows]


def _page_groups(
    session: Session, terms: list[tuple[str, str]], offset: int, limit: int | None, base: str
) -> tuple[int, list[Any]]:
    joined = and_(col(ScimLink.kind) == "Group", col(ScimLink.resource_id) == Group.id)
    conditions: list[Any] = [col(ScimLink.deleted_at).is_(None)]
    for name, value in terms:
        if name == "externalid":
            conditions.append(ScimLink.external_id == value)
        elif name == "displayname":
            conditions.append(func.lower(Group.name) == value.lower())
        else:
            conditions.append(_id_term(Group.id, value))
    total = session.exec(
        select(func.count()).select_from(Group).join(ScimLink, joined).where(*conditions)
    ).one()
    query = (
        select(Group, ScimLink)
        .join(ScimLink, joined)
        .where(*conditions)
        .order_by(col(Group.created_at), col(Group.id))
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.exec(query).all()
    members = _member_ids(session, [group.id for group, _link_row in rows])
    return total, [_to_group(group, link, members.get(group.id, []), base) for group, link in rows]
