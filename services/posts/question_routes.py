"""Q&A endpoints for questions: parse, call the rules, shape the response."""

from datetime import UTC
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status

from services.posts import answers, qa_views, questions
from services.posts.access import IdentityDep
from services.posts.articles import do_formalize_question
from services.posts.models import Question
from services.posts.qa_common import (
    check_origin,
    check_question,
    check_revision,
    list_revisions,
)
from services.posts.qa_schemas import (
    AcceptAnswer,
    CloseQuestion,
    QARevisionPublic,
    QuestionCreate,
    QuestionPublic,
    QuestionSort,
    QuestionSummary,
    QuestionUpdate,
    VoteCreate,
    VotePublic,
)
from services.posts.routes import FORMALIZED, NOT_FOUND, article_public
from services.posts.schemas import ArticlePublic, Formalize
from services.posts.votes import do_vote
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.ids import utcnow
from shared.pagination import MALFORMED_CURSOR, CursorParam, Page, PageSize
from shared.preconditions import PRECONDITION_FAILED, WITH_ETAG, IfMatch, check_if_match, etag
from shared.query import StrictQuery

router = APIRouter(route_class=IdempotentRoute, tags=["questions"])

Responses = dict[int | str, dict[str, Any]]
NOT_ALLOWED: Responses = {
    403: {"description": "Not the asker, a group owner or an administrator"},
    **NOT_FOUND,
}
ORIGIN_REPLAY: Responses = {
    200: {"description": "An import replaying an `origin.source`: the existing item"},
    403: {"description": "Not a member of the group, or `origin` from a non-administrator"},
    409: {"description": "The same `origin.source` imported concurrently; retry"},
}
CONCURRENT: Responses = {409: {"description": "Changed concurrently; retry"}}
VOTED: Responses = {403: {"description": "Voting on your own item"}, **NOT_FOUND, **CONCURRENT}
REVISIONS: Responses = {**MALFORMED_CURSOR, **NOT_FOUND}
Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


def question_etag(question: Question) -> str:
    return etag(question.id, question.version)


@router.post(
    "/questions",
    status_code=status.HTTP_201_CREATED,
    responses={**ORIGIN_REPLAY, **NOT_FOUND},
)
def create_question(
    body: QuestionCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> QuestionPublic:
    """Ask a question (revision 1), in a group if `group_id` is given."""
    question, created = questions.do_create_question(
        session=session, principal=principal, request=body, identity=identity
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return qa_views.question_public(session, principal, question)


@router.get("/questions", dependencies=[StrictQuery], responses=MALFORMED_CURSOR)
def list_questions(
    principal: CurrentUser,
    session: SessionDep,
    tag: Annotated[
        str | None, Query(max_length=51, description="A tag, with or without '#'.")
    ] = None,
    group_id: UUID | None = None,
    author_id: UUID | None = None,
    sort: QuestionSort = "newest",
    unanswered: Annotated[
        bool | None, Query(description="Only questions without (true) or with (false) an answer.")
    ] = None,
    unaccepted: Annotated[
        bool | None,
        Query(description="Only questions without (true) or with (false) an accepted answer."),
    ] = None,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[QuestionSummary]:
    """Questions the caller may read; newest, by recent activity or by votes (descending)."""
    items, next_cursor = questions.list_questions(
        session=session,
        principal=principal,
        tag=tag,
        group_id=group_id,
        author_id=author_id,
        sort=sort,
        unanswered=unanswered,
        unaccepted=unaccepted,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=qa_views.question_summaries(items), next_cursor=next_cursor)


@router.get("/questions/{question_id}", responses={**WITH_ETAG, **NOT_FOUND})
def read_question(
    question_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
) -> QuestionPublic:
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    response.headers["ETag"] = question_etag(question)
    return qa_views.question_public(session, principal, question)


@router.patch(
    "/questions/{question_id}",
    responses={
        **WITH_ETAG,
        **NOT_ALLOWED,
        **PRECONDITION_FAILED,
        409: {"description": "Changed concurrently"},
    },
)
def update_question(
    question_id: UUID,
    body: QuestionUpdate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    response: Response,
    if_match: IfMatch = None,
) -> QuestionPublic:
    """The asker, a group owner or an administrator edits; each change is a new revision."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    questions.check_question_manager(
        session=session,
        principal=principal,
        question=question,
        identity=identity,
        action="edit this question",
    )
    check_if_match(if_match, question_etag(question))
    question = questions.do_update_question(
        session=session, principal=principal, question=question, request=body
    )
    response.headers["ETag"] = question_etag(question)
    return qa_views.question_public(session, principal, question)


@router.delete(
    "/questions/{question_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_ALLOWED, **PRECONDITION_FAILED, **CONCURRENT},
)
def delete_question(
    question_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    if_match: IfMatch = None,
) -> None:
    """Delete a question with its answers and comments (asker, group owner, administrator)."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    questions.check_question_manager(
        session=session,
        principal=principal,
        question=question,
        identity=identity,
        action="delete this question",
    )
    check_if_match(if_match, question_etag(question))
    questions.do_delete_question(session=session, question=question)


@router.get("/questions/{question_id}/revisions", responses=REVISIONS)
def list_question_revisions(
    question_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    cursor: CursorParam = None,
    limit: PageSize = 20,
) -> Page[QARevisionPublic]:
    """A question's revisions, oldest first."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    items, next_cursor = list_revisions(
        session=session, item_id=question.id, cursor=cursor, limit=limit
    )
    return Page(items=[qa_views.revision_public(item) for item in items], next_cursor=next_cursor)


@router.get("/questions/{question_id}/revisions/{number}", responses=NOT_FOUND)
def read_question_revision(
    question_id: UUID,
    number: Number,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> QARevisionPublic:
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    return qa_views.revision_public(
        check_revision(session=session, item_id=question.id, number=number)
    )


@router.put("/questions/{question_id}/vote", responses=VOTED)
def vote_question(
    question_id: UUID,
    body: VoteCreate,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> VotePublic:
    """Vote a question up (1) or down (-1); a second vote replaces the first."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    answers.check_may_write(
        session=session, principal=principal, question=question, identity=identity
    )
    score, mine = do_vote(
        session=session, principal=principal, item=question, question=question, value=body.value
    )
    return VotePublic(score=score, my_vote=mine)


@router.delete("/questions/{question_id}/vote", responses=VOTED)
def unvote_question(
    question_id: UUID, principal: CurrentUser, session: SessionDep, identity: IdentityDep
) -> VotePublic:
    """Withdraw the caller's vote on a question."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    score, mine = do_vote(
        session=session, principal=principal, item=question, question=question, value=0
    )
    return VotePublic(score=score, my_vote=mine)


@router.put(
    "/questions/{question_id}/accepted-answer",
    responses={
        400: {"description": "Not an answer of this question"},
        409: {"description": "Changed concurrently"},
        403: {"description": "Not the asker, a group owner or an administrator; or `origin`"},
        **NOT_FOUND,
    },
)
def accept_answer(
    question_id: UUID,
    body: AcceptAnswer,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> QuestionPublic:
    """Accept one of the question's answers (or change which); asker, group owner, admin."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    questions.check_question_manager(
        session=session,
        principal=principal,
        question=question,
        identity=identity,
        action="accept an answer",
    )
    answer = questions.check_answer_of(session=session, question=question, answer_id=body.answer_id)
    check_origin(principal, body.origin)
    accepted_by, at = principal.user_id, utcnow()
    if body.origin is not None:
        accepted_by, at = body.origin.author_id, body.origin.created_at.astimezone(UTC)
    question = questions.do_set_accepted(
        session=session,
        principal=principal,
        question=question,
        answer=answer,
        accepted_by=accepted_by,
        at=at,
    )
    return qa_views.question_public(session, principal, question)


@router.delete(
    "/questions/{question_id}/accepted-answer",
    responses={409: {"description": "Changed concurrently"}, **NOT_ALLOWED},
)
def unaccept_answer(
    question_id: UUID, principal: CurrentUser, session: SessionDep, identity: IdentityDep
) -> QuestionPublic:
    """No answer is accepted any more (asker, group owner, administrator)."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    questions.check_question_manager(
        session=session,
        principal=principal,
        question=question,
        identity=identity,
        action="accept an answer",
    )
    question = questions.do_set_accepted(
        session=session,
        principal=principal,
        question=question,
        answer=None,
        accepted_by=principal.user_id,
        at=utcnow(),
    )
    return qa_views.question_public(session, principal, question)


@router.post(
    "/questions/{question_id}/close",
    status_code=status.HTTP_200_OK,
    responses={
        400: {"description": "A question cannot duplicate itself"},
        409: {"description": "Already closed"},
        **NOT_ALLOWED,
    },
)
def close_question(
    question_id: UUID,
    body: CloseQuestion,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> QuestionPublic:
    """Close as a duplicate of a question the caller can read; linked both ways."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    questions.check_question_manager(
        session=session,
        principal=principal,
        question=question,
        identity=identity,
        action="close this question",
    )
    question = questions.do_close_as_duplicate(
        session=session,
        principal=principal,
        question=question,
        duplicate_of=body.duplicate_of,
        identity=identity,
    )
    return qa_views.question_public(session, principal, question)


@router.post(
    "/questions/{question_id}/formalize",
    tags=["articles"],
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "The thread is too long for an article"},
        403: {"description": "Not a member of the question's group"},
        409: FORMALIZED,
        **NOT_FOUND,
    },
)
def formalize_question(
    question_id: UUID,
    body: Formalize,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
) -> ArticlePublic:
    """Turn a question thread into an article crediting every author; once per thread."""
    question = check_question(
        session=session, principal=principal, question_id=question_id, identity=identity
    )
    thread, _ = answers.list_answers(session=session, question=question, cursor=None, limit=10_000)
    comments = answers.comments_of(
        session=session, parent_ids=[question.id, *(a.id for a in thread)]
    )
    article = do_formalize_question(
        session=session,
        principal=principal,
        question=question,
        answers=thread,
        comments=comments,
        title=body.title,
        identity=identity,
    )
    return article_public(article)
