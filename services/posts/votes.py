"""Votes on questions and answers: one per person per item, never on your own.

An item's score is its imported base score plus its votes, kept by atomic UPDATEs, so
two votes at once both count. Functions here never commit.
"""

from typing import Literal
from uuid import UUID

from sqlalchemy import Table, update
from sqlmodel import Session, select

from services.posts.models import Answer, Question, Vote
from services.posts.qa_common import ANSWER_TABLE, QUESTION_TABLE
from services.posts.service import SOURCE, flush_or_conflict
from shared.auth import Principal
from shared.db import in_list
from shared.errors import Forbidden
from shared.events.contracts import VotableKind, VoteCast
from shared.events.outbox import record_event

VoteValue = Literal[-1, 0, 1]


def do_vote(
    *,
    session: Session,
    principal: Principal,
    item: Question | Answer,
    question: Question,
    value: VoteValue,
) -> tuple[int, VoteValue]:
    """Set the caller's vote on an item (0 withdraws it); returns (score, my vote)."""
    kind: VotableKind = "question" if isinstance(item, Question) else "answer"
    if item.author_id == principal.user_id:
        raise Forbidden(f"you cannot vote on your own {kind}")
    vote = session.get(Vote, (item.id, principal.user_id))
    previous = vote.value if vote is not None else 0
    if previous == value:
        session.refresh(item)
        return item.score, value
    if vote is None:
        session.add(Vote(item_id=item.id, user_id=principal.user_id, kind=kind, value=value))
    elif value == 0:
        session.delete(vote)
    else:
        vote.value = value
        session.add(vote)
    flush_or_conflict(session)  # two first votes of one person at once: the second is a 409
    table: Table = QUESTION_TABLE if kind == "question" else ANSWER_TABLE
    session.execute(
        update(table)
        .where(table.c.id == item.id)
        .values(score=table.c.score + (value - previous), vote_version=table.c.vote_version + 1)
    )
    session.refresh(item)
    record_event(
        session,
        VoteCast(
            question_id=question.id,
            group_id=question.group_id,
            visibility=question.visibility,
            content_id=item.id,
            kind=kind,
            author_id=item.author_id,
            voter_id=principal.user_id,
            value=value,
            score=item.score,
            version=item.vote_version,
        ),
        source=SOURCE,
    )
    return item.score, value


def my_votes(*, session: Session, principal: Principal, item_ids: list[UUID]) -> dict[UUID, int]:
    """The caller's vote on each of these items (one query; absent = 0)."""
    if not item_ids:
        return {}
    rows = session.exec(
        select(Vote.item_id, Vote.value).where(
            in_list(Vote.item_id, item_ids), Vote.user_id == principal.user_id
        )
    ).all()
    return {item_id: value for item_id, value in rows}
