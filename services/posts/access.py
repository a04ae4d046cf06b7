"""Who may read and post where: the group projection, confirmed by identity when it says no.

The projection (fed by identity's events) lags behind identity. When it does not know a
group, or says the caller is not a member, identity is asked over HTTP on the caller's
behalf before refusing, so a user who has just created or joined a group can use it at
once. If identity cannot be reached, the projection's answer stands. Membership facts,
from events or from identity's answers, carry identity's version of the membership and
are ordered by it (shared/projections.py), never by posts' clock.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import httpx
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, Table, or_, true
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col, select

from services.posts.models import KnownGroup, KnownMembership
from shared.auth import Principal
from shared.db import in_list
from shared.errors import Forbidden, NotFound
from shared.events.contracts import GroupVisibility, Visibility
from shared.ids import utcnow
from shared.observability import outgoing_headers
from shared.projections import UNVERSIONED, do_apply_fact

IDENTITY_TIMEOUT_SECONDS = 5.0
# Group roles that moderate: see and hide the group's hidden content.
MODERATING_ROLES = ("owner", "moderator")


@dataclass(frozen=True)
class GroupView:
    """What the caller may know about a group: its visibility and whether they belong."""

    visibility: GroupVisibility
    is_member: bool
    is_owner: bool = False  # a member with the owner role
    is_moderator: bool = False  # a member with the moderator or the owner role

    @property
    def role(self) -> str:
        return "owner" if self.is_owner else "moderator" if self.is_moderator else "member"


@dataclass(frozen=True)
class IdentityAnswer:
    """Identity's reply: the group as the caller sees it, hidden (404), or unavailable."""

    status: Literal["found", "hidden", "unavailable"]
    view: GroupView | None = None
    membership_version: int = 0  # identity's version of the caller's membership


UNAVAILABLE = IdentityAnswer("unavailable")
HIDDEN = IdentityAnswer("hidden")


class _GroupReply(BaseModel):
    visibility: GroupVisibility
    is_member: bool
    owner_id: UUID | None = None
    membership_version: int = 0
    role: str | None = None  # the caller's role in the group (identity names it since issue 10)


class IdentityGroups:
    """Asks identity about one group, forwarding the caller's Authorization header."""

    def __init__(self, *, client: httpx.Client, base_url: str, authorization: str | None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.authorization = authorization

    def ask(self, group_id: UUID, user_id: UUID | None = None) -> IdentityAnswer:
        """Identity's view of the group for the caller; never raises."""
        headers = outgoing_headers()
        if self.authorization:
            headers["Authorization"] = self.authorization
        try:
            response = self.client.get(
                f"{self.base_url}/groups/{group_id}",
                headers=headers,
                timeout=IDENTITY_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError:
            return UNAVAILABLE
        if response.status_code == 404:
            return HIDDEN
        if response.status_code != 200:
            return UNAVAILABLE
        try:
            reply = _GroupReply.model_validate_json(response.content)
        except ValidationError:
            return UNAVAILABLE
        is_owner = reply.is_member and user_id is not None and reply.owner_id == user_id
        is_moderator = reply.is_member and (is_owner or reply.role in MODERATING_ROLES)
        return IdentityAnswer(
            "found",
            GroupView(reply.visibility, reply.is_member, is_owner, is_moderator),
            reply.membership_version,
        )


async def get_identity_groups(request: Request) -> IdentityGroups:
    """The per-request identity client (one pooled HTTP client per process); async: no I/O
    here, so no thread hop."""
    return IdentityGroups(
        client=request.app.state.identity_http,
        base_url=request.app.state.settings.identity_url,
        authorization=request.headers.get("authorization"),
    )


IdentityDep = Annotated[IdentityGroups, Depends(get_identity_groups)]


def needs_confirmation(local: GroupView | None) -> bool:
    """Only a refusal is worth a round trip: unknown group, or not a member."""
    return local is None or not local.is_member


def resolve_group_view(*, local: GroupView | None, answer: IdentityAnswer) -> GroupView | None:
    """What to believe: identity when it answered, else the projection (None = no such group)."""
    if answer.status == "found":
        return answer.view
    if answer.status == "hidden":
        return None
    return local


def check_may_post(view: GroupView | None, group_id: UUID) -> GroupView:
    """Posting needs membership: 404 if the group is unknown or private, else 403."""
    if view is None or (view.visibility == "private" and not view.is_member):
        # A private group is not confirmed to exist for someone outside it.
        raise NotFound(f"no group {group_id}")
    if not view.is_member:
        raise Forbidden("only members can post in this group")
    return view


def item_visibility(group: GroupView | None) -> Visibility:
    """Items without a group or in an open group are public; in a private group, private."""
    return "private" if group is not None and group.visibility == "private" else "public"


# --- the projection -------------------------------------------------------------------


def local_group_view(*, session: Session, group_id: UUID, user_id: UUID) -> GroupView | None:
    # populate_existing: an upsert in this session may have changed the rows underneath.
    group = session.get(KnownGroup, group_id, populate_existing=True)
    if group is None:
        return None
    membership = session.get(KnownMembership, (group_id, user_id), populate_existing=True)
    is_member = membership is not None and membership.is_member
    role = membership.role if membership is not None and is_member else None
    return GroupView(
        visibility=group.visibility,
        is_member=is_member,
        is_owner=role == "owner",
        is_moderator=role in MODERATING_ROLES,
    )


def _upsert_unless_newer(
    *, session: Session, model: type[SQLModel], keys: list[str], values: dict[str, Any]
) -> None:
    """Insert a row, or update it unless it holds a newer fact (`as_of`); race-free."""
    table = cast(Table, model.__table__)  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in values if name not in keys},
        where=table.c.as_of <= statement.excluded.as_of,
    )
    session.execute(statement)


def do_remember_group(
    *, session: Session, group_id: UUID, visibility: GroupVisibility, as_of: datetime
) -> None:
    """Record a group's visibility (idempotent; an older fact never wins)."""
    _upsert_unless_newer(
        session=session,
        model=KnownGroup,
        keys=["id"],
        values={"id": group_id, "visibility": visibility, "as_of": as_of.astimezone(UTC)},
    )


def do_remember_membership(
    *,
    session: Session,
    group_id: UUID,
    user_id: UUID,
    is_member: bool,
    version: int,
    as_of: datetime,
    role: str = "member",
) -> None:
    """Record whether a user belongs to a group (idempotent; an older version never wins)."""
    do_apply_fact(
        session=session,
        model=KnownMembership,
        keys=["group_id", "user_id"],
        values={
            "group_id": group_id,
            "user_id": user_id,
            "is_member": is_member,
            "role": role if is_member else "member",
            "version": version,
            "as_of": as_of.astimezone(UTC),
        },
        at="as_of",
    )


def member_group_ids(*, session: Session, user_id: UUID) -> list[UUID]:
    return list(
        session.exec(
            select(KnownMembership.group_id).where(
                KnownMembership.user_id == user_id, col(KnownMembership.is_member).is_(True)
            )
        ).all()
    )


# --- decisions used by the service ----------------------------------------------------


def confirmed_group_view(
    *, session: Session, principal: Principal, group_id: UUID, identity: IdentityGroups
) -> GroupView | None:
    """The projection's view, confirmed by identity when it would refuse."""
    local = local_group_view(session=session, group_id=group_id, user_id=principal.user_id)
    if not needs_confirmation(local):
        return local
    answer = identity.ask(group_id, principal.user_id)
    view = resolve_group_view(local=local, answer=answer)
    if view is not None and answer.membership_version != UNVERSIONED:
        # Remember what identity confirmed, so reads right after agree with the write; its
        # version (not our clock) decides against the events still on their way.
        now = utcnow()
        do_remember_group(session=session, group_id=group_id, visibility=view.visibility, as_of=now)
        do_remember_membership(
            session=session,
            group_id=group_id,
            user_id=principal.user_id,
            is_member=view.is_member,
            version=answer.membership_version,
            as_of=now,
            role=view.role,
        )
    return view


def check_group_for_posting(
    *, session: Session, principal: Principal, group_id: UUID, identity: IdentityGroups
) -> GroupView:
    """The group the caller may post into, or 404/403."""
    view = confirmed_group_view(
        session=session, principal=principal, group_id=group_id, identity=identity
    )
    return check_may_post(view, group_id)


def is_group_owner(
    *, session: Session, principal: Principal, group_id: UUID | None, identity: IdentityGroups
) -> bool:
    """Whether the caller owns the group (projection first, identity when it says no)."""
    if group_id is None:
        return False
    local = local_group_view(session=session, group_id=group_id, user_id=principal.user_id)
    if local is not None and local.is_owner:
        return True
    answer = identity.ask(group_id, principal.user_id)
    view = resolve_group_view(local=local, answer=answer)
    return view is not None and view.is_owner


def can_read(
    *,
    session: Session,
    principal: Principal,
    group_id: UUID | None,
    visibility: str,
    identity: IdentityGroups,
) -> bool:
    """Public items are readable by everyone; private ones by the group's members."""
    if visibility != "private" or group_id is None:
        return True
    view = confirmed_group_view(
        session=session, principal=principal, group_id=group_id, identity=identity
    )
    return view is not None and view.is_member


def readable_filter(
    *, session: Session, principal: Principal, visibility: Any, group_id: Any
) -> ColumnElement[bool]:
    """A WHERE clause keeping rows the caller may read (for list queries)."""
    groups = member_group_ids(session=session, user_id=principal.user_id)
    return or_(col(visibility) == "public", in_list(group_id, groups))


# --- knowledge health -----------------------------------------------------------------

# Besides administrators, the organisation role that reads every knowledge-health figure.
HEALTH_ROLE = "analyst"


def check_health_reader(
    *, session: Session, principal: Principal, group_id: UUID | None, identity: IdentityGroups
) -> None:
    """Administrators and analysts read everything; a group owner reads their group's figures.

    A group nobody has heard of is a 404 for everyone; an administrator or analyst reads a
    private group's figures (not its content) from the projection, which knows every group.
    """
    reads_all = principal.is_admin or principal.role == HEALTH_ROLE
    if group_id is None:
        if not reads_all:
            raise Forbidden(
                "only administrators and analysts may read every tag; group owners add group_id"
            )
        return
    if reads_all:
        known = local_group_view(session=session, group_id=group_id, user_id=principal.user_id)
        if known is not None:
            return
    view = confirmed_group_view(
        session=session, principal=principal, group_id=group_id, identity=identity
    )
    if view is None or (view.visibility == "private" and not view.is_member):
        raise NotFound(f"no group {group_id}")
    if reads_all:
        return
    if not is_group_owner(
        session=session, principal=principal, group_id=group_id, identity=identity
    ):
        raise Forbidden("only the group's owners, administrators and analysts may read its health")


# --- moderation -----------------------------------------------------------------------


def is_group_moderator(
    *, session: Session, principal: Principal, group_id: UUID | None, identity: IdentityGroups
) -> bool:
    """Whether the caller moderates (or owns) the group: projection first, then identity."""
    if group_id is None:
        return False
    local = local_group_view(session=session, group_id=group_id, user_id=principal.user_id)
    if local is not None and local.is_moderator:
        return True
    answer = identity.ask(group_id, principal.user_id)
    view = resolve_group_view(local=local, answer=answer)
    return view is not None and view.is_moderator


def may_see_hidden(
    *, session: Session, principal: Principal, group_id: UUID | None, identity: IdentityGroups
) -> bool:
    """Hidden items stay visible to administrators and to their group's moderators and owner."""
    return principal.is_admin or is_group_moderator(
        session=session, principal=principal, group_id=group_id, identity=identity
    )


def check_moderator(
    *, session: Session, principal: Principal, group_id: UUID | None, identity: IdentityGroups
) -> None:
    """Hiding is for the item's group's moderators and owner, and administrators; else 403."""
    if not may_see_hidden(
        session=session, principal=principal, group_id=group_id, identity=identity
    ):
        raise Forbidden("only the group's moderators, its owner or an administrator may hide it")


def moderated_group_ids(*, session: Session, user_id: UUID) -> list[UUID]:
    return list(
        session.exec(
            select(KnownMembership.group_id).where(
                KnownMembership.user_id == user_id,
                col(KnownMembership.is_member).is_(True),
                col(KnownMembership.role).in_(MODERATING_ROLES),
            )
        ).all()
    )


def unhidden_filter(
    *, session: Session, principal: Principal, hidden_at: Any, group_id: Any
) -> Any:
    """A WHERE clause dropping hidden rows, except for those who may see them (list queries)."""
    if principal.is_admin:
        return true()
    groups = moderated_group_ids(session=session, user_id=principal.user_id)
    return or_(col(hidden_at).is_(None), in_list(group_id, groups))
