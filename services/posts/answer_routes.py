"""Q&A endpoints for answers, comments and knowledge health."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from services.posts import access, answers, health, qa_views
from services.posts.access import IdentityDep
from services.posts.models import Answer, Comment
from services.posts.qa_common import check_question, list_revisions
from services.posts.qa_schemas import (
    AnswerCreate,
    AnswerPublic,
    AnswerUpdate,
    CommentCreate,
    CommentPublic,
    CommentUpdate,
    GroupHealth,
    QARevisionPublic,
    TagHealthPage,
    VoteCreate,
    VotePublic,
)
from services.posts.question_routes import NOT_ALLOWED, ORIGIN_REPLAY, REVISIONS, VOTED
from services.posts.routes import NOT_FOUND
from services.posts.votes import do_vote
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.pagination import MALFORMED_CURSOR, CursorParam, Page, PageSize
from shared.preconditions import PRECONDITION_FAILED, WITH_ETAG, IfMatch, check_if_match, etag
from shared.query import StrictQuery

router = APIRouter(route_class=IdempotentRoute)

Responses = dict[int | str, dict[str, Any]]
CHANGE: Responses = {
    **WITH_ETAG,
    **NOT_ALLOWED,
    **PRECONDITION_FAILED,
    409: {"description": "Changed concurrently"},
}
UnansweredAfter = Annotated[
    int, Query(ge=1, le=24 * 3650, description="A question unanswered this long counts as old.")
]


def item_etag(item: Answer | Comment) -> str:
    return etag(item.id, item.version)


# --- answers --------------------------------------------------------------------------


@router.get(
    "/questions/{question_id}/answers",
    tags=["answers"],
    dependencies=[StrictQuery],
    responses={**MALFORMED_CURSOR, **NOT_FOUND},
)
def list_answers(
    question_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[AnswerPublic]:
    """A question's answers: the accepted one first, then by score, then oldest."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    items, next_cursor = answers.list_answers(
        session=session, question=question, cursor=cursor, limit=limit
    )
    return Page(
        items=qa_views.answers_public(session, principal, question, items),
        next_cursor=next_cursor,
    )


@router.post(
    "/questions/{question_id}/answers",
    tags=["answers"],
    status_code=status.HTTP_201_CREATED,
    responses={**ORIGIN_REPLAY, 409: {"description": "The question is closed"}, **NOT_FOUND},
)
def create_answer(
    question_id: UUID,
    body: AnswerCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> AnswerPublic:
    """Answer a question (not one closed as a duplicate)."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    answer, created = answers.do_create_answer(
        session=session, principal=principal, question=question, request=body, identity=identity
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return qa_views.answers_public(session, principal, question, [answer])[0]


@router.get("/answers/{answer_id}", tags=["answers"], responses={**WITH_ETAG, **NOT_FOUND})
def read_answer(
    answer_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> AnswerPublic:
    answer, question = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    response.headers["ETag"] = item_etag(answer)
    return qa_views.answers_public(session, principal, question, [answer])[0]


@router.patch("/answers/{answer_id}", tags=["answers"], responses=CHANGE)
def update_answer(
    answer_id: UUID,
    body: AnswerUpdate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
    if_match: IfMatch = None,
) -> AnswerPublic:
    """The author, a group owner or an administrator edits; each change is a new revision."""
    answer, question = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    answers.check_answer_manager(
        session=session, principal=principal, answer=answer, identity=identity
    )
    check_if_match(if_match, item_etag(answer))
    answer = answers.do_update_answer(
        session=session, principal=principal, answer=answer, question=question, body=body.body
    )
    response.headers["ETag"] = item_etag(answer)
    return qa_views.answers_public(session, principal, question, [answer])[0]


@router.delete(
    "/answers/{answer_id}",
    tags=["answers"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_ALLOWED, **PRECONDITION_FAILED, 409: {"description": "Changed concurrently"}},
)
def delete_answer(
    answer_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    if_match: IfMatch = None,
) -> None:
    """Delete an answer (author, group owner, administrator); if accepted, no longer."""
    answer, question = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    answers.check_answer_manager(
        session=session, principal=principal, answer=answer, identity=identity
    )
    check_if_match(if_match, item_etag(answer))
    answers.do_delete_answer(session=session, principal=principal, answer=answer, question=question)


@router.get("/answers/{answer_id}/revisions", tags=["answers"], responses=REVISIONS)
def list_answer_revisions(
    answer_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[QARevisionPublic]:
    """An answer's revisions, oldest first."""
    answer, _ = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    items, next_cursor = list_revisions(
        session=session, item_id=answer.id, cursor=cursor, limit=limit
    )
    return Page(items=[qa_views.revision_public(item) for item in items], next_cursor=next_cursor)


@router.put(
    "/answers/{answer_id}/vote",
    tags=["answers"],
    responses=VOTED,
)
def vote_answer(
    answer_id: UUID,
    body: VoteCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> VotePublic:
    """Vote an answer up (1) or down (-1); a second vote replaces the first."""
    answer, question = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    answers.check_may_write(
        session=session, principal=principal, question=question, identity=identity
    )
    score, mine = do_vote(
        session=session, principal=principal, item=answer, question=question, value=body.value
    )
    return VotePublic(score=score, my_vote=mine)


@router.delete("/answers/{answer_id}/vote", tags=["answers"], responses=VOTED)
def unvote_answer(
    answer_id: UUID, principal: CurrentUser, session: SessionDep, identity: IdentityDep
) -> VotePublic:
    """Withdraw the caller's vote on an answer."""
    answer, question = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    score, mine = do_vote(
        session=session, principal=principal, item=answer, question=question, value=0
    )
    return VotePublic(score=score, my_vote=mine)


# --- comments -------------------------------------------------------------------------

COMMENTED: Responses = {**ORIGIN_REPLAY, **NOT_FOUND}


@router.post(
    "/questions/{question_id}/comments",
    tags=["comments"],
    status_code=status.HTTP_201_CREATED,
    responses=COMMENTED,
)
def comment_question(
    question_id: UUID,
    body: CommentCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> CommentPublic:
    """Comment on a question."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    comment, created = answers.do_create_comment(
        session=session,
        principal=principal,
        question=question,
        parent_id=question.id,
        parent_kind="question",
        request=body,
        identity=identity,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return qa_views.comment_public(comment)


@router.post(
    "/answers/{answer_id}/comments",
    tags=["comments"],
    status_code=status.HTTP_201_CREATED,
    responses=COMMENTED,
)
def comment_answer(
    answer_id: UUID,
    body: CommentCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> CommentPublic:
    """Comment on an answer."""
    answer, question = answers.check_answer(
        session=session, principal=principal, answer_id=answer_id, identity=identity
    )
    comment, created = answers.do_create_comment(
        session=session,
        principal=principal,
        question=question,
        parent_id=answer.id,
        parent_kind="answer",
        request=body,
        identity=identity,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return qa_views.comment_public(comment)


@router.patch(
    "/comments/{comment_id}",
    tags=["comments"],
    responses={
        **WITH_ETAG,
        403: {"description": "Not the author or an administrator"},
        **NOT_FOUND,
        **PRECONDITION_FAILED,
        409: {"description": "Changed concurrently"},
    },
)
def update_comment(
    comment_id: UUID,
    body: CommentUpdate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
    if_match: IfMatch = None,
) -> CommentPublic:
    comment = answers.check_own_comment(
        session=session, principal=principal, comment_id=comment_id, identity=identity
    )
    check_if_match(if_match, item_etag(comment))
    comment = answers.do_update_comment(session=session, comment=comment, body=body.body)
    response.headers["ETag"] = item_etag(comment)
    return qa_views.comment_public(comment)


@router.delete(
    "/comments/{comment_id}",
    tags=["comments"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"description": "Not the author or an administrator"},
        **NOT_FOUND,
        **PRECONDITION_FAILED,
        409: {"description": "Changed concurrently"},
    },
)
def delete_comment(
    comment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    if_match: IfMatch = None,
) -> None:
    comment = answers.check_own_comment(
        session=session, principal=principal, comment_id=comment_id, identity=identity
    )
    check_if_match(if_match, item_etag(comment))
    answers.do_delete_comment(session=session, comment=comment)


# --- knowledge health -----------------------------------------------------------------

HEALTH_READERS: Responses = {
    403: {"description": "Not an administrator or analyst (or, with group_id, the group's owner)"},
    **NOT_FOUND,
}


@router.get(
    "/knowledge-health/tags",
    tags=["knowledge-health"],
    dependencies=[StrictQuery],
    responses=HEALTH_READERS,
)
def tags_health(
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    group_id: UUID | None = None,
    unanswered_after_hours: UnansweredAfter = 24,
) -> TagHealthPage:
    """Per tag: questions asked, share answered, medians, old unanswered ones, who knows."""
    access.check_health_reader(
        session=session, principal=principal, group_id=group_id, identity=identity
    )
    _, per_tag = health.tally(
        session=session, group_id=group_id, unanswered_after_hours=unanswered_after_hours
    )
    items = health.tag_health(per_tag)
    return TagHealthPage(
        unanswered_after_hours=unanswered_after_hours,
        items=items,
        at_risk=[item.tag for item in items if item.at_risk],
    )


@router.get(
    "/knowledge-health/groups/{group_id}",
    tags=["knowledge-health"],
    dependencies=[StrictQuery],
    responses=HEALTH_READERS,
)
def group_health(
    group_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    unanswered_after_hours: UnansweredAfter = 24,
) -> GroupHealth:
    """One group's figures, in all and per tag (its owners and administrators)."""
    access.check_health_reader(
        session=session, principal=principal, group_id=group_id, identity=identity
    )
    whole, per_tag = health.tally(
        session=session, group_id=group_id, unanswered_after_hours=unanswered_after_hours
    )
    items = health.tag_health(per_tag)
    return GroupHealth(
        group_id=group_id,
        unanswered_after_hours=unanswered_after_hours,
        tags=items,
        at_risk_tags=[item.tag for item in items if item.at_risk],
        **whole.figures().model_dump(),
    )
