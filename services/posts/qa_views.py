"""Q&A response shapes, loaded in a fixed number of queries per page (no N+1)."""

from collections import defaultdict
from typing import Any, Literal, cast
from uuid import UUID

from sqlmodel import Session, col, select

from services.posts.access import readable_filter
from services.posts.answers import comments_of
from services.posts.models import Answer, Article, Comment, QARevision, Question
from services.posts.qa_schemas import (
    AnswerPublic,
    CommentPublic,
    QARevisionPublic,
    QuestionPublic,
    QuestionSummary,
)
from services.posts.votes import my_votes
from shared.auth import Principal

VoteValue = Literal[-1, 0, 1]


def comment_public(comment: Comment) -> CommentPublic:
    return CommentPublic.model_validate(comment.model_dump())


def _summary_fields(question: Question) -> dict[str, Any]:
    return {
        **question.model_dump(),
        "has_accepted_answer": question.accepted_answer_id is not None,
    }


def question_summaries(questions: list[Question]) -> list[QuestionSummary]:
    return [QuestionSummary.model_validate(_summary_fields(item)) for item in questions]


def question_public(session: Session, principal: Principal, question: Question) -> QuestionPublic:
    """A question with its comments, duplicates, articles and the caller's vote."""
    session.refresh(question)  # counters move by atomic UPDATEs underneath the object
    readable = readable_filter(
        session=session,
        principal=principal,
        visibility=Question.visibility,
        group_id=Question.group_id,
    )
    duplicates = session.exec(
        select(Question.id)
        .where(Question.duplicate_of == question.id, col(Question.deleted_at).is_(None), readable)
        .order_by(col(Question.id))
    ).all()
    articles = session.exec(
        select(Article.id)
        .where(
            Article.source_question_id == question.id,
            col(Article.deleted_at).is_(None),
            readable_filter(
                session=session,
                principal=principal,
                visibility=Article.visibility,
                group_id=Article.group_id,
            ),
        )
        .order_by(col(Article.id))
    ).all()
    comments = comments_of(session=session, parent_ids=[question.id]).get(question.id, [])
    vote = my_votes(session=session, principal=principal, item_ids=[question.id])
    return QuestionPublic.model_validate(
        {
            **_summary_fields(question),
            "comments": [comment_public(comment) for comment in comments],
            "duplicates": list(duplicates),
            "formalized_as": list(articles),
            "my_vote": vote.get(question.id, 0),
        }
    )


def answers_public(
    session: Session, principal: Principal, question: Question, answers: list[Answer]
) -> list[AnswerPublic]:
    """Answers with their comments and the caller's votes (two queries for all)."""
    ids = [answer.id for answer in answers]
    comments: dict[UUID, list[Comment]] = defaultdict(
        list, comments_of(session=session, parent_ids=ids)
    )
    votes = my_votes(session=session, principal=principal, item_ids=ids)
    return [
        AnswerPublic.model_validate(
            {
                **answer.model_dump(),
                "is_accepted": answer.id == question.accepted_answer_id,
                "my_vote": cast(VoteValue, votes.get(answer.id, 0)),
                "comments": [comment_public(comment) for comment in comments[answer.id]],
            }
        )
        for answer in answers
    ]


def revision_public(revision: QARevision) -> QARevisionPublic:
    return QARevisionPublic.model_validate(revision.model_dump())
