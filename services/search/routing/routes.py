"""Routing's endpoints: who was asked about a question, declining, a group's escalation delay."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from services.search.routing import service
from services.search.routing.models import RoutingAsk
from services.search.routing.schemas import (
    DeclineBody,
    GroupEscalationBody,
    GroupRoutingPublic,
    QuestionRouting,
    RoutedPerson,
    RoutingRoundPublic,
)
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.events.contracts import RoutedEvidence
from shared.idempotency import IdempotentRoute
from shared.ids import utcnow

router = APIRouter(prefix="/routing", tags=["routing"], route_class=IdempotentRoute)

NOT_READABLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such question, or the caller may not read it"}
}


def routed_person(ask: RoutingAsk, handle: str | None) -> RoutedPerson:
    return RoutedPerson(
        user_id=ask.user_id,
        handle=handle,
        reason=ask.reason,
        evidence=[RoutedEvidence.model_validate(item) for item in ask.evidence],
        status=ask.status,
        responded_at=ask.responded_at,
    )


@router.get(
    "/questions/{question_id}",
    responses={403: {"description": "A reader who is not the asker"}, **NOT_READABLE},
)
def get_question_routing(
    principal: CurrentUser, session: SessionDep, question_id: UUID
) -> QuestionRouting:
    """Each routing round of a question: who was asked, why, and how they responded."""
    _question, rounds, asks, handles = service.get_routing(
        session=session, principal=principal, question_id=question_id
    )
    return QuestionRouting(
        question_id=question_id,
        rounds=[
            RoutingRoundPublic(
                round=round_.round,
                routed_at=round_.routed_at,
                people=[
                    routed_person(ask, handles.get(ask.user_id))
                    for ask in asks
                    if ask.round == round_.round
                ],
            )
            for round_ in rounds
        ],
    )


@router.post(
    "/questions/{question_id}/decline",
    responses={
        403: {"description": "The caller was not asked about this question"},
        409: {"description": "The caller already answered it"},
        **NOT_READABLE,
    },
)
def decline_question(
    principal: CurrentUser, session: SessionDep, question_id: UUID, body: DeclineBody
) -> RoutedPerson:
    """ "Not my area": recorded, and later questions on these tags rank the caller lower."""
    ask = service.do_decline(
        session=session,
        principal=principal,
        question_id=question_id,
        reason=body.reason,
        at=utcnow(),
    )
    return routed_person(ask, principal.handle)


@router.put(
    "/groups/{group_id}",
    responses={
        403: {"description": "Not the group's owner or an administrator"},
        404: {"description": "No such group, or the caller may not see it"},
    },
)
def set_group_escalation(
    principal: CurrentUser, session: SessionDep, group_id: UUID, body: GroupEscalationBody
) -> GroupRoutingPublic:
    """How long a group's questions wait for an answer before the next round (default 24 h)."""
    setting = service.do_set_group_escalation(
        session=session,
        principal=principal,
        group_id=group_id,
        hours=body.escalation_hours,
        at=utcnow(),
    )
    return GroupRoutingPublic(group_id=group_id, escalation_hours=setting.escalation_hours)
