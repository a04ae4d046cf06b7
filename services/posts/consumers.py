"""Posts' event handlers: identity's groups and memberships kept as a local projection.

Handlers are idempotent, and each membership fact carries identity's version of it, so a
replayed or late event never overrides a newer one (shared/projections.py).
"""

from collections.abc import Sequence

from sqlmodel import Session

from services.posts import privacy
from services.posts.access import do_remember_group, do_remember_membership
from shared.events.consumer import Consumer
from shared.events.contracts import GroupCreated, GroupMemberAdded, GroupMemberRemoved
from shared.events.envelope import CloudEvent
from shared.events.erasure import erasure_consumer
from shared.settings import Settings

GROUPS_CONSUMER = "posts-groups"


def on_group_created(session: Session, envelope: CloudEvent, data: GroupCreated) -> None:
    do_remember_group(
        session=session,
        group_id=data.group_id,
        visibility=data.visibility,
        as_of=envelope.time,
    )


def on_member_added(session: Session, envelope: CloudEvent, data: GroupMemberAdded) -> None:
    as_of = envelope.time
    do_remember_group(
        session=session, group_id=data.group_id, visibility=data.visibility, as_of=as_of
    )
    do_remember_membership(
        session=session,
        group_id=data.group_id,
        user_id=data.user_id,
        is_member=True,
        version=data.version,
        as_of=as_of,
        role=data.role,
    )


def on_member_removed(session: Session, envelope: CloudEvent, data: GroupMemberRemoved) -> None:
    as_of = envelope.time
    do_remember_group(
        session=session, group_id=data.group_id, visibility=data.visibility, as_of=as_of
    )
    do_remember_membership(
        session=session,
        group_id=data.group_id,
        user_id=data.user_id,
        is_member=False,
        version=data.version,
        as_of=as_of,
    )


def consumers(_settings: Settings) -> Sequence[Consumer]:
    """The durable consumers the posts service runs."""
    return [
        Consumer(
            GROUPS_CONSUMER,
            {
                GroupCreated: on_group_created,
                GroupMemberAdded: on_member_added,
                GroupMemberRemoved: on_member_removed,
            },
        ),
        erasure_consumer("posts", privacy.erase),
    ]
