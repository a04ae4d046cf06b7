"""Notifications' event handlers: contract in, projection or `do_notify`, idempotent.

People, groups, memberships, content and routing share ONE consumer: the stream keeps their
order, so a membership is known before the private post that mentions its member, and a
question before its answers. Digests come alone (they depend on nothing projected here).
"""

from collections.abc import Sequence
from functools import partial

from sqlmodel import Session

from services.notifications import projections, triggers
from services.notifications.mail.account import do_queue_password_reset
from services.notifications.models import NotifiedMembership
from shared.events.consumer import Consumer, Handler, projection_consumer
from shared.events.contracts import (
    AnswerAccepted,
    AnswerCreated,
    AnswerDeleted,
    AnswerUpdated,
    ArticleCreated,
    ArticleDeleted,
    ArticleUpdated,
    CommentCreated,
    CommentDeleted,
    CommentUpdated,
    ContentEvent,
    ContentSnapshot,
    DigestReady,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    PasswordResetRequested,
    PostCreated,
    PostDeleted,
    PostUpdated,
    QuestionCreated,
    QuestionDeleted,
    QuestionRouted,
    QuestionUpdated,
    UserContactUpdated,
    UserProfileUpdated,
    UserRegistered,
)
from shared.events.envelope import CloudEvent, EventData
from shared.ids import utcnow
from shared.settings import Settings

CREATED = (PostCreated, ArticleCreated, QuestionCreated, AnswerCreated, CommentCreated)
UPDATED = (PostUpdated, ArticleUpdated, QuestionUpdated, AnswerUpdated, CommentUpdated)
DELETED = (PostDeleted, ArticleDeleted, QuestionDeleted, AnswerDeleted, CommentDeleted)


def on_content(
    session: Session, envelope: CloudEvent, data: ContentSnapshot, *, newer_than_hours: float
) -> None:
    if not projections.do_project_content(session=session, data=data):
        return  # stale or replayed: whatever it says was already told
    triggers.notify_content(
        session=session,
        data=data,
        created=isinstance(data, CREATED),
        event_id=envelope.id,
        newer_than_hours=newer_than_hours,
    )


def on_content_deleted(session: Session, _envelope: CloudEvent, data: ContentEvent) -> None:
    projections.do_project_deletion(session=session, data=data)


def on_accepted(session: Session, envelope: CloudEvent, data: AnswerAccepted) -> None:
    triggers.notify_accepted(session=session, data=data, event_id=envelope.id)


def on_routed(session: Session, envelope: CloudEvent, data: QuestionRouted) -> None:
    triggers.notify_routed(session=session, data=data, event_id=envelope.id)


def on_user(
    session: Session, envelope: CloudEvent, data: UserRegistered | UserProfileUpdated
) -> None:
    projections.do_project_user(session=session, data=data, at=envelope.time)


def on_contact(session: Session, _envelope: CloudEvent, data: UserContactUpdated) -> None:
    projections.do_project_contact(session=session, data=data)


def on_group_created(session: Session, _envelope: CloudEvent, data: GroupCreated) -> None:
    projections.do_project_group(session=session, data=data)


def on_member_added(session: Session, envelope: CloudEvent, data: GroupMemberAdded) -> None:
    stored = session.get(NotifiedMembership, (data.group_id, data.user_id))
    was_active, previous_role = (stored.active, stored.role) if stored else (False, None)
    applied = projections.do_project_membership(
        session=session, data=data, active=True, role=data.role, at=envelope.time
    )
    if applied:
        triggers.notify_membership(
            session=session,
            data=data,
            previous_role=previous_role,
            was_active=was_active,
            event_id=envelope.id,
        )


def on_member_removed(session: Session, envelope: CloudEvent, data: GroupMemberRemoved) -> None:
    projections.do_project_membership(
        session=session, data=data, active=False, role=None, at=envelope.time
    )


def on_digest(session: Session, envelope: CloudEvent, data: DigestReady) -> None:
    triggers.notify_digest(session=session, data=data, event_id=envelope.id)


def on_password_reset(session: Session, envelope: CloudEvent, data: PasswordResetRequested) -> None:
    do_queue_password_reset(session=session, data=data, event_id=envelope.id, now=utcnow())


def notification_consumers(settings: Settings) -> Sequence[Consumer]:
    """The ordered facts-and-triggers consumer, the digests one, and account e-mails (alone,
    so a reset link never waits behind a backlog of inbox events)."""
    content = partial(on_content, newer_than_hours=settings.notify_content_newer_than_hours)
    handlers: dict[type[EventData], Handler] = {
        UserRegistered: on_user,
        UserProfileUpdated: on_user,
        UserContactUpdated: on_contact,
        GroupCreated: on_group_created,
        GroupMemberAdded: on_member_added,
        GroupMemberRemoved: on_member_removed,
        AnswerAccepted: on_accepted,
        QuestionRouted: on_routed,
    }
    handlers.update(dict.fromkeys(CREATED + UPDATED, content))
    handlers.update(dict.fromkeys(DELETED, on_content_deleted))
    return (
        projection_consumer("notifications-inbox", handlers),
        Consumer("notifications-digests", {DigestReady: on_digest}),
        Consumer("notifications-account-mail", {PasswordResetRequested: on_password_reset}),
    )
