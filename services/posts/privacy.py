"""Delete on request (GDPR erasure) and export of one's own data, posts' part.

What an erased person wrote stays: questions, answers and articles are the organisation's
knowledge, and others' answers, comments and credits build on them. What names the person
goes: their handle on their own items (shown as the former member's tombstone handle),
@mentions of them and credits in others' text. Their memberships as projected here end by
identity's `GroupMemberRemoved` events. Reactions and votes stay as counts,
tied only to the tombstone id, which names no one.
"""

import re
from typing import Any
from uuid import UUID

from sqlalchemy import String, cast
from sqlmodel import Session, col, or_, select

from services.posts.answers import answer_snapshot, comment_snapshot
from services.posts.articles import article_snapshot
from services.posts.models import (
    Answer,
    Article,
    ArticleRevision,
    Comment,
    Post,
    QARevision,
    Question,
    Reaction,
    Vote,
)
from services.posts.questions import question_snapshot
from services.posts.service import SOURCE, post_snapshot
from shared.events.contracts import (
    AnswerUpdated,
    ArticleUpdated,
    CommentUpdated,
    PostUpdated,
    QuestionUpdated,
    UserErasureRequested,
)
from shared.events.outbox import record_event
from shared.ids import utcnow

# What a mention of an erased person reads as (not a handle: nobody can be it).
FORMER_MEMBER = "[former member]"
# Stands as the editor of the revision that removes an erased person's name from an article.
ERASURE_EDITOR = UUID(int=0)
AUTHORED = (Post, Article, Question, Answer, Comment)


def _name_patterns(handle: str) -> list[tuple[re.Pattern[str], str]]:
    """A mention (`@ada`) and a formalized thread's credit (`**ada**`), whole words only."""
    escaped = re.escape(handle)
    return [
        (re.compile(rf"(?<![\w@])@{escaped}(?![\w])", re.IGNORECASE), FORMER_MEMBER),
        (re.compile(rf"\*\*{escaped}\*\*", re.IGNORECASE), f"**{FORMER_MEMBER}**"),
    ]


def _scrub(text: str, patterns: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return text


def _naming(session: Session, model: Any, handle: str) -> list[Any]:
    """Rows of `model` whose text may name `handle` (the exact test is the regex)."""
    like = f"%{handle}%"
    where: Any = col(model.body).ilike(like)
    if hasattr(model, "title"):
        where = or_(where, col(model.title).ilike(like))
    return list(session.exec(select(model).where(where)).all())


def _rename_authorship(session: Session, data: UserErasureRequested) -> int:
    """The tombstone handle on every item the person wrote; no event (events carry no handle)."""
    count = 0
    for model in AUTHORED:
        for row in session.exec(select(model).where(model.author_id == data.user_id)).all():
            row.author_handle = data.replacement_handle
            session.add(row)
            count += 1
    credited = cast(col(Article.contributors), String).contains(str(data.user_id))
    for article in session.exec(select(Article).where(credited)).all():
        credits = [
            {**credit, "handle": data.replacement_handle}
            if credit.get("user_id") == str(data.user_id)
            else credit
            for credit in article.contributors
        ]
        if credits != article.contributors:
            article.contributors = credits
            session.add(article)
            count += 1
    return count


def _scrub_revisions(session: Session, handle: str) -> int:
    patterns = _name_patterns(handle)
    count = 0
    for model in (ArticleRevision, QARevision):
        for revision in _naming(session, model, handle):
            body = _scrub(revision.body, patterns)
            title = _scrub(revision.title, patterns) if revision.title else revision.title
            if (body, title) != (revision.body, revision.title):
                revision.body, revision.title = body, title
                session.add(revision)
                count += 1
    return count


def _scrub_item(row: Any, handle: str, patterns: list[tuple[re.Pattern[str], str]]) -> bool:
    body = _scrub(row.body, patterns)
    mentions = [mention for mention in row.mentions if mention != handle]
    changed = body != row.body or mentions != row.mentions
    row.body, row.mentions = body, mentions
    if isinstance(row, Article | Question):
        title = _scrub(row.title, patterns)
        changed = changed or title != row.title
        row.title = title
    return changed


def _scrub_mentions(session: Session, handle: str) -> int:
    """Others' (and their own) text that names the person: rewritten, and re-announced so that
    search, digests and notifications replace their copies."""
    patterns = _name_patterns(handle)
    count = 0
    for model in AUTHORED:
        for row in _naming(session, model, handle):
            if not _scrub_item(row, handle, patterns):
                continue
            count += 1
            if isinstance(row, Article):
                row.version += 1
                session.add(
                    ArticleRevision(
                        article_id=row.id,
                        number=row.version,
                        editor_id=ERASURE_EDITOR,
                        title=row.title,
                        body=row.body,
                        tags=list(row.tags),
                    )
                )
            else:
                row.version += 1
            session.add(row)
            session.flush()
            if row.deleted_at is None:
                record_event(session, _snapshot(session, row), source=SOURCE)
    return count


def _snapshot(session: Session, row: Any) -> Any:
    if isinstance(row, Post):
        return post_snapshot(row, PostUpdated)
    if isinstance(row, Article):
        return article_snapshot(row, ArticleUpdated)
    if isinstance(row, Question):
        return question_snapshot(row, QuestionUpdated)
    if isinstance(row, Answer):
        question = session.get(Question, row.question_id)
        assert question is not None
        return answer_snapshot(row, question, AnswerUpdated)
    return comment_snapshot(row, CommentUpdated)


def erase(session: Session, data: UserErasureRequested) -> dict[str, int]:
    """Remove the person's name from posts; what was changed, by kind."""
    authorship = _rename_authorship(session, data)
    handle = data.handle.lower()
    mentions = _scrub_mentions(session, handle) if handle else 0
    revisions = _scrub_revisions(session, handle) if handle else 0
    return {
        "authorship_anonymised": authorship,
        "mentions_removed": mentions,
        "revisions_scrubbed": revisions,
    }


def _rows(session: Session, model: Any, *where: Any) -> list[dict[str, Any]]:
    return [
        row.model_dump(mode="json")
        for row in session.exec(select(model).where(*where).order_by(col(model.created_at))).all()
    ]


def export(session: Session, user_id: UUID) -> dict[str, Any]:
    """What the person wrote and did here: their items, reactions and votes (no one else's)."""
    by_them = {
        name: _rows(session, model, col(model.author_id) == user_id)
        for name, model in (
            ("posts", Post),
            ("articles", Article),
            ("questions", Question),
            ("answers", Answer),
            ("comments", Comment),
        )
    }
    return {
        "exported_at": utcnow().isoformat(),
        **by_them,
        "reactions": _rows(session, Reaction, col(Reaction.user_id) == user_id),
        "votes": _rows(session, Vote, col(Vote.user_id) == user_id),
    }
