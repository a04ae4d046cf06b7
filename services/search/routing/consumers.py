"""Routing's event handlers: a new question is routed; answers, acceptances, closes and
deletions stop its escalation (deleting a question's last answer resumes it); tag follows
feed its last round.

All question and answer events go through one durable consumer, so they apply in the
order posts wrote them (an answer never arrives before its question). Each handler runs
in the runner's transaction with its processed-event record, and routing rows are keyed
by question (and person), so a redelivered event changes nothing.
"""

from collections.abc import Sequence

from sqlmodel import Session

from services.search.engines import EngineFactory
from services.search.routing import service
from services.search.routing.settings import RoutingSettings
from services.search.semantic.service import Semantic
from shared.events.consumer import Consumer
from shared.events.contracts import (
    AnswerAccepted,
    AnswerCreated,
    AnswerDeleted,
    FollowCreated,
    FollowDeleted,
    QuestionClosed,
    QuestionCreated,
    QuestionDeleted,
    QuestionUpdated,
)
from shared.events.envelope import CloudEvent
from shared.ids import utcnow


def routing_consumers(
    engines: EngineFactory, settings: RoutingSettings, semantic: Semantic
) -> Sequence[Consumer]:
    """The question consumer (routing and its stops) and the tag-follow projection."""

    def on_question_created(session: Session, _envelope: CloudEvent, data: QuestionCreated) -> None:
        service.do_route_new_question(
            session=session,
            engine=engines(session),
            data=data,
            now=utcnow(),
            settings=settings,
            semantic=semantic,
        )

    def on_question_updated(session: Session, _envelope: CloudEvent, data: QuestionUpdated) -> None:
        service.do_update_question(session=session, data=data)

    def on_question_deleted(session: Session, _envelope: CloudEvent, data: QuestionDeleted) -> None:
        service.do_stop_question(session=session, question_id=data.content_id, status="deleted")

    def on_question_closed(session: Session, _envelope: CloudEvent, data: QuestionClosed) -> None:
        service.do_stop_question(session=session, question_id=data.question_id, status="closed")

    def on_answer_created(session: Session, _envelope: CloudEvent, data: AnswerCreated) -> None:
        question_id = data.parent_id or data.thread_id
        if question_id is not None:
            service.do_mark_answered(
                session=session,
                question_id=question_id,
                author_id=data.author_id,
                at=data.created_at,
                answer_id=data.content_id,
            )

    def on_answer_deleted(session: Session, envelope: CloudEvent, data: AnswerDeleted) -> None:
        service.do_forget_answer(
            session=session,
            answer_id=data.content_id,
            at=data.deleted_at,
            settings=settings,
        )

    def on_answer_accepted(session: Session, envelope: CloudEvent, data: AnswerAccepted) -> None:
        if data.answer_id is not None:
            service.do_mark_answered(
                session=session,
                question_id=data.question_id,
                author_id=data.answer_author_id,
                at=envelope.time,
            )

    def on_follow(
        session: Session, envelope: CloudEvent, data: FollowCreated | FollowDeleted
    ) -> None:
        if data.target_type == "tag":
            service.do_set_tag_follow(
                session=session,
                follower_id=data.follower_id,
                tag=data.target,
                active=isinstance(data, FollowCreated),
                at=envelope.time,
            )

    return (
        Consumer(
            "search-routing",
            {
                QuestionCreated: on_question_created,
                QuestionUpdated: on_question_updated,
                QuestionDeleted: on_question_deleted,
                QuestionClosed: on_question_closed,
                AnswerCreated: on_answer_created,
                AnswerDeleted: on_answer_deleted,
                AnswerAccepted: on_answer_accepted,
            },
        ),
        Consumer("search-follows", {FollowCreated: on_follow, FollowDeleted: on_follow}),
    )
