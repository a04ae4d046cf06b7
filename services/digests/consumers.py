"""Digests' event handlers: contract in, projection call, idempotent and order-safe."""

from collections.abc import Sequence

from sqlmodel import Session

from services.digests import privacy, service
from shared.events.consumer import Consumer, projection_consumer
from shared.events.contracts import (
    AnswerCreated,
    AnswerDeleted,
    AnswerUpdated,
    ArticleCreated,
    ArticleDeleted,
    ArticleUpdated,
    ContentSnapshot,
    FollowCreated,
    FollowDeleted,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    NotificationPreferencesUpdated,
    PostCreated,
    PostDeleted,
    PostUpdated,
    QuestionCreated,
    QuestionDeleted,
    QuestionUpdated,
    UserProfileUpdated,
    UserRegistered,
)
from shared.events.envelope import CloudEvent
from shared.events.erasure import erasure_consumer
from shared.settings import Settings


def on_content(session: Session, _envelope: CloudEvent, data: ContentSnapshot) -> None:
    service.do_project_content(session=session, data=data)


def on_content_deleted(
    session: Session,
    _envelope: CloudEvent,
    data: PostDeleted | ArticleDeleted | QuestionDeleted | AnswerDeleted,
) -> None:
    service.do_project_deletion(session=session, data=data, deleted_at=data.deleted_at)


def on_follow_created(session: Session, envelope: CloudEvent, data: FollowCreated) -> None:
    service.do_project_follow(session=session, data=data, active=True, at=envelope.time)


def on_follow_deleted(session: Session, envelope: CloudEvent, data: FollowDeleted) -> None:
    service.do_project_follow(session=session, data=data, active=False, at=envelope.time)


def on_group_created(session: Session, _envelope: CloudEvent, data: GroupCreated) -> None:
    service.do_project_group(session=session, data=data)


def on_member_added(session: Session, envelope: CloudEvent, data: GroupMemberAdded) -> None:
    service.do_project_membership(
        session=session, data=data, user_id=data.user_id, active=True, at=envelope.time
    )


def on_member_removed(session: Session, envelope: CloudEvent, data: GroupMemberRemoved) -> None:
    service.do_project_membership(
        session=session, data=data, user_id=data.user_id, active=False, at=envelope.time
    )


def on_user(
    session: Session, envelope: CloudEvent, data: UserRegistered | UserProfileUpdated
) -> None:
    service.do_project_user(session=session, data=data, at=envelope.time)


def on_preferences(
    session: Session, envelope: CloudEvent, data: NotificationPreferencesUpdated
) -> None:
    service.do_project_preference(session=session, data=data, at=envelope.time)


def digest_consumers(_settings: Settings) -> Sequence[Consumer]:
    """One durable consumer per projection, so a stuck one does not hold up the others."""
    return (
        projection_consumer(
            "digests-content",
            {
                PostCreated: on_content,
                PostUpdated: on_content,
                ArticleCreated: on_content,
                ArticleUpdated: on_content,
                PostDeleted: on_content_deleted,
                ArticleDeleted: on_content_deleted,
            },
        ),
        # Questions and answers in their own durable consumer: added after the first, so an
        # existing deployment gets a new consumer that reads them from the stream's start.
        projection_consumer(
            "digests-questions",
            {
                QuestionCreated: on_content,
                QuestionUpdated: on_content,
                AnswerCreated: on_content,
                AnswerUpdated: on_content,
                QuestionDeleted: on_content_deleted,
                AnswerDeleted: on_content_deleted,
            },
        ),
        projection_consumer(
            "digests-follows",
            {FollowCreated: on_follow_created, FollowDeleted: on_follow_deleted},
        ),
        projection_consumer(
            "digests-groups",
            {
                GroupCreated: on_group_created,
                GroupMemberAdded: on_member_added,
                GroupMemberRemoved: on_member_removed,
            },
        ),
        projection_consumer(
            "digests-users", {UserRegistered: on_user, UserProfileUpdated: on_user}
        ),
        projection_consumer(
            "digests-preferences", {NotificationPreferencesUpdated: on_preferences}
        ),
        erasure_consumer("digests", privacy.erase),
    )
