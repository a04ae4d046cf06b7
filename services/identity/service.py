"""Identity's rules: accounts, profiles, groups, memberships and follows.

Functions here add rows and outbox events to the caller's session and never commit.
"""

from typing import Any, cast
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Table, and_, func, or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from services.identity import access
from services.identity.audit import Origin, record_audit
from services.identity.models import Follow, Group, Membership, MembershipVersion, User
from services.identity.passwords import BoundedHasher
from services.identity.policy import check_password
from services.identity.schemas import (
    TAG_PATTERN,
    FollowCreate,
    GroupCreate,
    ProfileUpdate,
    RegisterRequest,
    UserImport,
)
from shared.auth import Principal
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from shared.events.contracts import (
    FollowCreated,
    FollowDeleted,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRole,
    OrganisationRole,
    UserContactUpdated,
    UserProfileUpdated,
    UserRegistered,
)
from shared.events.outbox import record_event
from shared.pagination import cursor_id, cursor_text, cursor_time, decode_cursor, paginate, past
from shared.preconditions import flush_versioned
from shared.settings import Settings

SOURCE = "/knowflow/identity"
# argon2id with the library's RFC 9106 low-memory profile, at most a few at a time.
password_hasher = BoundedHasher(PasswordHasher())
# Verifying against this keeps a login for an unknown user as slow as for a known one.
_DUMMY_HASH = password_hasher.hash("knowflow-timing-equaliser")
IMPORTED_EMAIL_DOMAIN = "imported.invalid"


def do_register(
    *, session: Session, request: RegisterRequest, first_user_is_admin: bool = False
) -> User:
    """Create an account (a member; with `first_user_is_admin`, the first one is the admin).

    The check gives the usual answer; two registrations racing are decided by the
    unique constraints (409 from `shared.db.get_session`).
    """
    email = request.email.lower()
    taken = session.exec(
        select(User).where(or_(col(User.handle) == request.handle, col(User.email) == email))
    ).first()
    if taken is not None:
        field = "handle" if taken.handle == request.handle else "email"
        raise Conflict(f"that {field} is already registered")
    check_password(request.password, handle=request.handle, email=email)
    # Only `make run` asks for it; imported accounts do not count.
    is_first = (
        first_user_is_admin
        and session.exec(
            select(func.count()).select_from(User).where(col(User.import_source).is_(None))
        ).one()
        == 0
    )
    return do_create_account(
        session=session,
        handle=request.handle,
        email=email,
        password_hash=password_hasher.hash(request.password),
        display_name=request.display_name,
        role="admin" if is_first else "member",
    )


def do_create_account(
    *,
    session: Session,
    handle: str,
    email: str,
    password_hash: str,
    display_name: str,
    role: OrganisationRole,
) -> User:
    """Add an account and announce it (registration, single sign-on's first sign-in)."""
    user = User(
        handle=handle,
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        role=role,
    )
    session.add(user)
    session.flush()
    record_event(
        session,
        UserRegistered(user_id=user.id, handle=user.handle, display_name=user.display_name),
        source=SOURCE,
    )
    # Restricted: the notifier needs the address; nobody outside Knowflow may read it.
    record_event(
        session,
        UserContactUpdated(user_id=user.id, email=user.email, changed_at=user.created_at),
        source=SOURCE,
    )
    return user


def do_import_user(
    *, session: Session, principal: Principal, request: UserImport, origin: Origin | None = None
) -> tuple[User, bool]:
    """An admin brings an account from elsewhere; the one already imported from that source.

    The account has no password, so nobody can sign in as it (there is no way yet to claim
    it). Its email is a placeholder under `.invalid` (RFC 6761), which registration refuses,
    so it can never collide with a real one. Returns the user and whether it is new.
    """
    access.check_admin(principal, "import accounts")
    existing = session.exec(select(User).where(User.import_source == request.source)).first()
    if existing is not None:
        return existing, False
    if session.exec(select(User).where(User.handle == request.handle)).first() is not None:
        raise Conflict("that handle is already registered")
    user = User(
        handle=request.handle,
        email="",
        password_hash="",
        display_name=request.display_name,
        bio=request.bio,
        created_at=request.created_at,
        import_source=request.source,
    )
    user.email = f"imported-{user.id}@{IMPORTED_EMAIL_DOMAIN}"
    session.add(user)
    session.flush()
    record_event(
        session,
        UserRegistered(user_id=user.id, handle=user.handle, display_name=user.display_name),
        source=SOURCE,
    )
    record_audit(
        session,
        action="user.imported",
        target=f"user:{user.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"source": request.source},
    )
    return user, True


def check_password_sign_in_enabled(*, settings: Settings) -> None:
    """Refuse password registration and login where the deployment signs in by SSO only."""
    if not settings.password_login_enabled:
        raise Forbidden(
            "password sign-in is disabled on this deployment: sign in with single sign-on "
            "(GET /api/v1/auth/oidc/providers)"
        )


def check_credentials(*, session: Session, login: str, password: str) -> User:
    """The user whose handle or email and password match, or 401."""
    login = login.strip().lower()
    user = session.exec(
        select(User).where(or_(col(User.handle) == login, col(User.email) == login))
    ).first()
    # An imported account has no password: as slow to refuse as an unknown login.
    has_password = user is not None and bool(user.password_hash)
    try:
        password_hasher.verify(
            user.password_hash if user and has_password else _DUMMY_HASH, password
        )
    except (VerificationError, InvalidHashError):
        raise Unauthorized("wrong login or password") from None
    if user is None or not has_password:
        raise Unauthorized("wrong login or password")
    # Only after the password matched: a guesser learns nothing about the account's state,
    # and the person themselves is told why (not left retrying a right password).
    if not user.active:
        raise Forbidden("this account is deactivated; ask an administrator")
    return user


def check_user(*, session: Session, user_id: UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def do_update_profile(*, session: Session, user: User, update: ProfileUpdate) -> User:
    changes = update.model_dump(exclude_unset=True, exclude_none=True)
    if any(getattr(user, name) != value for name, value in changes.items()):
        user.version += 1
    for name, value in changes.items():
        setattr(user, name, value)
    session.add(user)
    flush_versioned(session)
    record_event(
        session,
        UserProfileUpdated(
            user_id=user.id,
            handle=user.handle,
            display_name=user.display_name,
            bio=user.bio,
            skills=list(user.skills),
        ),
        source=SOURCE,
    )
    return user


def is_member(*, session: Session, group_id: UUID, user_id: UUID) -> bool:
    return session.get(Membership, (group_id, user_id)) is not None


def membership_state(*, session: Session, group_id: UUID, user_id: UUID) -> tuple[bool, int]:
    """Whether the user belongs to the group, and that membership's version, read together.

    One statement, so both come from the same snapshot even while a change commits.
    """
    members = select(func.count()).where(
        Membership.group_id == group_id, Membership.user_id == user_id
    )
    version = select(MembershipVersion.version).where(
        MembershipVersion.group_id == group_id, MembershipVersion.user_id == user_id
    )
    count, number = session.execute(
        select(members.scalar_subquery(), version.scalar_subquery())
    ).one()
    return bool(count), int(cast(int | None, number) or 0)


def _next_membership_version(*, session: Session, group_id: UUID, user_id: UUID) -> int:
    """Number the next change of a membership; the row lock orders concurrent changes."""
    table = cast(Table, MembershipVersion.__table__)  # type: ignore[attr-defined]
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    statement = (
        insert(table)
        .values(group_id=group_id, user_id=user_id, version=1)
        .on_conflict_do_update(
            index_elements=["group_id", "user_id"], set_={"version": table.c.version + 1}
        )
        .returning(table.c.version)
    )
    return int(session.execute(statement).scalar_one())


def check_visible_group(*, session: Session, group_id: UUID, principal: Principal) -> Group:
    """A group the caller may see: open groups, or private ones they belong to (else 404)."""
    group = session.get(Group, group_id)
    if group is None or (
        group.visibility == "private"
        and not is_member(session=session, group_id=group_id, user_id=principal.user_id)
    ):
        raise NotFound(f"no group {group_id}")
    return group


def list_visible_groups(
    *, session: Session, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[tuple[Group, bool]], str | None]:
    """A page of open groups and the private groups the caller belongs to, by name then id.

    One query: the caller's own membership is outer-joined, so a private group is filtered
    out in the database unless the caller is in it.
    """
    mine = and_(
        col(Membership.group_id) == col(Group.id), col(Membership.user_id) == principal.user_id
    )
    statement = (
        select(Group, Membership.user_id)
        .outerjoin(Membership, mine)
        .where(or_(col(Group.visibility) == "open", col(Membership.user_id).is_not(None)))
    )
    after = decode_cursor(cursor, 2)
    if after is not None:
        key = cursor_text(after[0]), cursor_id(after[1])
        statement = statement.where(past(col(Group.name), col(Group.id), key, descending=False))
    statement = statement.order_by(col(Group.name), col(Group.id))
    rows, next_cursor = paginate(
        session, statement, limit=limit, cursor_of=lambda row: [row[0].name, str(row[0].id)]
    )
    return [(group, member is not None) for group, member in rows], next_cursor


def do_create_group(*, session: Session, principal: Principal, request: GroupCreate) -> Group:
    """Open groups' slugs are unique; only an open group can make a slug taken (no leak)."""
    open_with_slug = select(Group).where(Group.slug == request.slug, Group.visibility == "open")
    if session.exec(open_with_slug).first() is not None:
        raise Conflict(f"the slug {request.slug!r} is taken by an open group")
    group = Group(
        slug=request.slug,
        name=request.name,
        description=request.description,
        visibility=request.visibility,
        owner_id=principal.user_id,
    )
    session.add(group)
    session.flush()
    record_event(
        session,
        GroupCreated(
            group_id=group.id,
            visibility=request.visibility,
            slug=group.slug,
            name=group.name,
            owner_id=group.owner_id,
        ),
        source=SOURCE,
    )
    add_membership(
        session=session,
        group=group,
        user_id=principal.user_id,
        role="owner",
        added_by=principal.user_id,
    )
    return group


def add_membership(
    *, session: Session, group: Group, user_id: UUID, role: GroupRole, added_by: UUID
) -> Membership:
    version = _next_membership_version(session=session, group_id=group.id, user_id=user_id)
    membership = Membership(group_id=group.id, user_id=user_id, role=role)
    session.add(membership)
    session.flush()
    record_event(
        session,
        GroupMemberAdded(
            group_id=group.id,
            visibility=group.visibility,
            user_id=user_id,
            role=role,
            version=version,
            added_by=added_by,
        ),
        source=SOURCE,
    )
    return membership


def do_add_member(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID,
    user_id: UUID,
    origin: Origin | None = None,
) -> Membership:
    """Owners and moderators add anyone; in an open group people may add themselves."""
    group = check_visible_group(session=session, group_id=group_id, principal=principal)
    if session.get(User, user_id) is None:
        # Not a 404: the group (the target) exists; it is the body that names nobody.
        raise BadRequest(f"no user {user_id}")
    access.check_may_add_member(session=session, group=group, principal=principal, user_id=user_id)
    if is_member(session=session, group_id=group_id, user_id=user_id):
        raise Conflict("already a member")
    membership = add_membership(
        session=session, group=group, user_id=user_id, role="member", added_by=principal.user_id
    )
    record_audit(
        session,
        action="group.member_added",
        target=f"group:{group.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"user_id": str(user_id), "role": "member"},
    )
    return membership


def do_remove_member(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID,
    user_id: UUID,
    origin: Origin | None = None,
) -> None:
    """Members may leave (the owner stays); owners and moderators remove those below them."""
    group = check_visible_group(session=session, group_id=group_id, principal=principal)
    membership = session.get(Membership, (group_id, user_id))
    access.check_may_leave_or_remove(
        session=session,
        group=group,
        principal=principal,
        user_id=user_id,
        target_role=membership.role if membership is not None else None,
    )
    if membership is None:
        raise NotFound("not a member")
    record_audit(
        session,
        action="group.member_left" if user_id == principal.user_id else "group.member_removed",
        target=f"group:{group.id}",
        actor_id=principal.user_id,
        origin=origin,
        details={"user_id": str(user_id), "role": membership.role},
    )
    remove_membership(session=session, group=group, membership=membership)


def do_grant_membership(*, session: Session, group: Group, user_id: UUID) -> bool:
    """Make someone a member on the platform's behalf (e.g. a mapped SSO groups claim).

    False if they already are. The person counts as having added themselves.
    """
    if is_member(session=session, group_id=group.id, user_id=user_id):
        return False
    add_membership(session=session, group=group, user_id=user_id, role="member", added_by=user_id)
    return True


def do_revoke_membership(*, session: Session, group: Group, user_id: UUID) -> bool:
    """End a membership on the platform's behalf; never the owner's. False if nothing changed."""
    membership = session.get(Membership, (group.id, user_id))
    if membership is None or user_id == group.owner_id:
        return False
    remove_membership(session=session, group=group, membership=membership)
    return True


def remove_membership(*, session: Session, group: Group, membership: Membership) -> None:
    """End a membership: the removal event, and no following of a private group left."""
    user_id = membership.user_id
    version = _next_membership_version(session=session, group_id=group.id, user_id=user_id)
    session.delete(membership)
    record_event(
        session,
        GroupMemberRemoved(
            group_id=group.id,
            visibility=group.visibility,
            user_id=user_id,
            version=version,
        ),
        source=SOURCE,
    )
    # Following a private group one has left would leak its content into digests.
    if group.visibility == "private":
        follow = _find_follow(
            session=session, follower_id=user_id, target_type="group", target=str(group.id)
        )
        if follow is not None:
            _delete_follow(session=session, follow=follow)


def list_members(
    *, session: Session, principal: Principal, group_id: UUID, cursor: str | None, limit: int
) -> tuple[list[tuple[Membership, User]], str | None]:
    """A page of a group the caller may see's members, by joining time then id (else 404)."""
    check_visible_group(session=session, group_id=group_id, principal=principal)
    statement = (
        select(Membership, User)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(Membership.group_id == group_id)
    )
    after = decode_cursor(cursor, 2)
    if after is not None:
        key = cursor_time(after[0]), cursor_id(after[1])
        joined, member = col(Membership.created_at), col(Membership.user_id)
        statement = statement.where(past(joined, member, key, descending=False))
    statement = statement.order_by(col(Membership.created_at), col(Membership.user_id))

    def cursor_of(last: tuple[Membership, User]) -> list[Any]:
        membership = last[0]
        return [membership.created_at.isoformat(), str(membership.user_id)]

    rows, next_cursor = paginate(session, statement, limit=limit, cursor_of=cursor_of)
    return [(membership, user) for membership, user in rows], next_cursor


def _find_follow(
    *, session: Session, follower_id: UUID, target_type: str, target: str
) -> Follow | None:
    return session.exec(
        select(Follow).where(
            Follow.follower_id == follower_id,
            Follow.target_type == target_type,
            Follow.target == target,
        )
    ).first()


def _check_follow_target(*, session: Session, principal: Principal, request: FollowCreate) -> str:
    """The normalised target, if it exists and the caller may follow it."""
    if request.target_type == "tag":
        if not TAG_PATTERN.match(request.target):
            raise BadRequest("a tag is letters, digits, '-' or '_' (at most 50)")
        return request.target
    try:
        target_id = UUID(request.target)
    except ValueError:
        raise BadRequest(f"a {request.target_type} is followed by its id") from None
    if request.target_type == "user":
        check_user(session=session, user_id=target_id)
        if target_id == principal.user_id:
            raise BadRequest("you cannot follow yourself")
    else:
        check_visible_group(session=session, group_id=target_id, principal=principal)
    return str(target_id)


def do_follow(*, session: Session, principal: Principal, request: FollowCreate) -> Follow:
    target = _check_follow_target(session=session, principal=principal, request=request)
    if _find_follow(
        session=session,
        follower_id=principal.user_id,
        target_type=request.target_type,
        target=target,
    ):
        raise Conflict("already following")
    follow = Follow(follower_id=principal.user_id, target_type=request.target_type, target=target)
    session.add(follow)
    session.flush()
    record_event(
        session,
        FollowCreated(
            follower_id=principal.user_id, target_type=request.target_type, target=target
        ),
        source=SOURCE,
    )
    return follow


def _delete_follow(*, session: Session, follow: Follow) -> None:
    session.delete(follow)
    record_event(
        session,
        FollowDeleted(
            follower_id=follow.follower_id,
            target_type=follow.target_type,
            target=follow.target,
        ),
        source=SOURCE,
    )


def do_unfollow(*, session: Session, principal: Principal, follow_id: UUID) -> None:
    follow = session.get(Follow, follow_id)
    if follow is None or follow.follower_id != principal.user_id:
        raise NotFound(f"no follow {follow_id}")
    _delete_follow(session=session, follow=follow)


def list_follows(
    *, session: Session, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[Follow], str | None]:
    """A page of the caller's follows, oldest first (ids are UUIDv7: creation order)."""
    statement = select(Follow).where(Follow.follower_id == principal.user_id)
    after = decode_cursor(cursor, 1)
    if after is not None:
        statement = statement.where(col(Follow.id) > cursor_id(after[0]))
    statement = statement.order_by(col(Follow.id))
    return paginate(session, statement, limit=limit, cursor_of=lambda row: [str(row.id)])
