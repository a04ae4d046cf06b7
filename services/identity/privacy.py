"""Delete on request (GDPR erasure) and the export of one's own data, identity's part.

Erasure keeps the account row as a tombstone (`erased_at`): its id stays, so content that
points at it is shown as from a former member, but nothing about the person does. Identity
removes what it holds at once and tells every other service by `UserErasureRequested`; each
answers with an `ErasureReported`, which identity keeps to build the combined report.
"""

from typing import Literal, cast
from uuid import UUID

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, or_, select

from services.identity import join_requests, service
from services.identity.audit import Origin, record_audit
from services.identity.join_request_schemas import JoinRequestPublic
from services.identity.models import (
    Erasure,
    ErasureReport,
    ExternalIdentity,
    Follow,
    Group,
    JoinRequest,
    Membership,
    ScimLink,
    User,
)
from services.identity.privacy_schemas import (
    ErasurePublic,
    IdentityExport,
    MembershipExport,
    ServiceReport,
)
from services.identity.schemas import FollowPublic, UserMe
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized
from shared.events.contracts import (
    AccessRevoked,
    ErasureReported,
    UserDeactivated,
    UserErasureRequested,
    UserProfileUpdated,
)
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.preconditions import flush_versioned

SOURCE = "/knowflow/identity"
# Every service that holds personal data and reports its part of an erasure.
ERASURE_SERVICES = ("identity", "posts", "search", "digests", "notifications")
FORMER_MEMBER_NAME = "Former member"
ERASED_EMAIL_DOMAIN = "erased.invalid"
# Where the other parts of a person's export are read (through the gateway).
EXPORT_PARTS = {
    "posts": "/api/v1/users/me/export/posts",
    "notifications": "/api/v1/users/me/export/notifications",
}

Requester = Literal["self", "admin"]


def tombstone_handle(user_id: UUID) -> str:
    """Stands for an erased person: unique, and refused by registration (it has a '-')."""
    return f"former-{user_id.hex}"


def check_caller(*, session: Session, principal: Principal) -> User:
    """The caller's account, or 401 when it was erased or deactivated since the token."""
    user = session.get(User, principal.user_id)
    if user is None or user.erased_at is not None or not user.active:
        raise Unauthorized("this account no longer has access")
    return user


def check_password(*, user: User, password: str) -> None:
    """403 unless `password` is the account's own (an account without one cannot confirm)."""
    if not user.password_hash:
        raise Forbidden("this account has no password to confirm with; ask an admin")
    try:
        service.password_hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise Forbidden("the password does not match") from None


def check_erasable(*, session: Session, principal: Principal, user_id: UUID) -> User:
    """An admin erases anyone but themselves (they erase themselves with their password)."""
    if not principal.is_admin:
        raise Forbidden("only an admin erases another person's data")
    if user_id == principal.user_id:
        raise Forbidden("erase your own data with your password, at /users/me/erasure")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    if user.erased_at is not None:
        erasure = session.exec(select(Erasure).where(Erasure.user_id == user_id)).first()
        raise Conflict(
            "this person's data was already erased",
            erasure_id=str(erasure.id) if erasure else None,
        )
    return user


def _remove_memberships(*, session: Session, user: User) -> int:
    rows = session.exec(
        select(Membership, Group)
        .join(Group, col(Group.id) == col(Membership.group_id))
        .where(Membership.user_id == user.id)
    ).all()
    for membership, group in rows:
        service.remove_membership(session=session, group=group, membership=membership)
    return len(rows)


def _remove_external_links(*, session: Session, user: User) -> int:
    """Single sign-on links and SCIM's names for the person (its userName may be an e-mail)."""
    links = session.exec(select(ExternalIdentity).where(ExternalIdentity.user_id == user.id)).all()
    for link in links:
        session.delete(link)
    scim = session.get(ScimLink, ("User", user.id))
    if scim is not None:
        scim.external_id = None
        scim.user_name = None
        session.add(scim)
    return len(links) + (1 if user.import_source else 0) + (1 if scim is not None else 0)


def _remove_follows(*, session: Session, user: User) -> tuple[int, int]:
    """Their follows, and others' follows of them (which would name nobody): both counted."""
    follows = session.exec(
        select(Follow).where(
            or_(
                col(Follow.follower_id) == user.id,
                (col(Follow.target_type) == "user") & (col(Follow.target) == str(user.id)),
            )
        )
    ).all()
    own = sum(1 for follow in follows if follow.follower_id == user.id)
    for follow in follows:
        service._delete_follow(session=session, follow=follow)
    return own, len(follows) - own


def do_erase(
    *,
    session: Session,
    user: User,
    requested_by: Requester,
    actor_id: UUID,
    origin: Origin,
) -> Erasure:
    """Erase `user`'s personal data here, revoke their access and ask every service to erase."""
    now = utcnow()
    old_handle, old_name = user.handle, user.display_name
    was_active = user.active
    memberships = _remove_memberships(session=session, user=user)
    follows, followers = _remove_follows(session=session, user=user)
    external_links = _remove_external_links(session=session, user=user)
    requests_to_join = join_requests.remove_for_user(session=session, user_id=user.id)
    removed = {
        "profile": 1,
        "email": 1,
        "password": 1 if user.password_hash else 0,
        "skills": len(user.skills),
        "follows": follows,
        "followers": followers,
        "memberships": memberships,
        "external_links": external_links,
        "join_requests": requests_to_join,
    }
    user.handle = tombstone_handle(user.id)
    user.email = f"erased-{user.id.hex}@{ERASED_EMAIL_DOMAIN}"
    user.display_name = FORMER_MEMBER_NAME
    user.bio = ""
    user.skills = []
    user.password_hash = ""
    user.import_source = None
    user.active = False
    user.deactivated_at = user.deactivated_at or now
    user.erased_at = now
    user.version += 1
    session.add(user)
    flush_versioned(session)
    erasure = Erasure(user_id=user.id, requested_at=now, requested_by=requested_by)
    session.add(erasure)
    session.flush()
    session.add(
        ErasureReport(
            erasure_id=erasure.id,
            service="identity",
            removed={kind: count for kind, count in removed.items() if count},
            reported_at=now,
        )
    )
    # Projections of the person (search, digests, notifications) take the tombstone's name.
    record_event(
        session,
        UserProfileUpdated(
            user_id=user.id,
            handle=user.handle,
            display_name=user.display_name,
            bio="",
            skills=[],
        ),
        source=SOURCE,
    )
    if was_active:
        # A former member to every service, as after a deactivation.
        record_event(session, UserDeactivated(user_id=user.id, deactivated_at=now), source=SOURCE)
    record_event(
        session, AccessRevoked(user_id=user.id, not_before=now, reason="erased"), source=SOURCE
    )
    record_event(
        session,
        UserErasureRequested(
            erasure_id=erasure.id,
            user_id=user.id,
            requested_at=now,
            handle=old_handle,
            display_name=old_name,
            replacement_handle=user.handle,
            replacement_display_name=user.display_name,
        ),
        source=SOURCE,
    )
    record_audit(
        session,
        action="user.erased",
        target=f"user:{user.id}",
        actor_id=actor_id,
        origin=origin,
        details={"requested_by": requested_by, "erasure_id": str(erasure.id)},
    )
    return erasure


def do_record_report(*, session: Session, data: ErasureReported) -> None:
    """Keep one service's report; a repeated one (same erasure, same service) replaces it."""
    if session.get(Erasure, data.erasure_id) is None:
        return  # not an erasure of this identity service (nothing to attach it to)
    table = cast(Table, ErasureReport.__table__)  # type: ignore[attr-defined]
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    values = {
        "erasure_id": data.erasure_id,
        "service": data.service,
        "removed": dict(data.removed),
        "reported_at": data.reported_at,
    }
    session.execute(
        insert(table)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["erasure_id", "service"],
            set_={"removed": values["removed"], "reported_at": values["reported_at"]},
        )
    )


def check_report(*, session: Session, erasure_id: UUID) -> ErasurePublic:
    """The combined report of one erasure, or 404."""
    erasure = session.get(Erasure, erasure_id)
    if erasure is None:
        raise NotFound(f"no erasure {erasure_id}")
    rows = session.exec(
        select(ErasureReport)
        .where(ErasureReport.erasure_id == erasure_id)
        .order_by(col(ErasureReport.service))
    ).all()
    reported = {row.service for row in rows}
    pending = [name for name in ERASURE_SERVICES if name not in reported]
    return ErasurePublic(
        id=erasure.id,
        requested_at=erasure.requested_at,
        complete=not pending,
        reports=[
            ServiceReport(service=row.service, removed=row.removed, reported_at=row.reported_at)
            for row in rows
        ],
        pending=pending,
    )


def export(*, session: Session, user: User) -> IdentityExport:
    """Everything identity holds about `user`, as they may read it."""
    follows = session.exec(
        select(Follow).where(Follow.follower_id == user.id).order_by(col(Follow.created_at))
    ).all()
    memberships = session.exec(
        select(Membership, Group)
        .join(Group, col(Group.id) == col(Membership.group_id))
        .where(Membership.user_id == user.id)
        .order_by(col(Membership.created_at))
    ).all()
    requests = session.exec(
        select(JoinRequest).where(JoinRequest.user_id == user.id).order_by(col(JoinRequest.id))
    ).all()
    return IdentityExport(
        exported_at=utcnow(),
        profile=UserMe.model_validate(user, from_attributes=True),
        follows=[FollowPublic.model_validate(follow, from_attributes=True) for follow in follows],
        memberships=[
            MembershipExport(
                group_id=group.id,
                slug=group.slug,
                name=group.name,
                role=membership.role,
                joined_at=membership.created_at,
            )
            for membership, group in memberships
        ],
        join_requests=[
            JoinRequestPublic.model_validate(request, from_attributes=True) for request in requests
        ],
        parts=dict(EXPORT_PARTS),
    )
