"""Who is told what: turn another service's event into `do_notify` calls.

Every notification goes through `do_notify`, which checks that the person may see the item,
their preference for the kind, and tells them once per dedupe key. Content older than
`notify_content_newer_than_hours` tells nobody (imports of history).
"""

from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import Session, select

from services.notifications.models import (
    Notification,
    NotifiedContent,
    NotifiedGroup,
    NotifiedUser,
)
from services.notifications.projections import normalise_handle, private_group_of
from services.notifications.service import do_notify
from shared.db import in_list
from shared.events.contracts import (
    AnswerAccepted,
    ContentSnapshot,
    DigestReady,
    GroupMemberAdded,
    QuestionRouted,
)
from shared.ids import utcnow

_KIND_PATHS = {"post": "posts", "reply": "posts", "article": "articles", "question": "questions"}
_KIND_NAMES = {
    "post": "a post",
    "reply": "a reply",
    "article": "an article",
    "question": "a question",
    "answer": "an answer",
    "comment": "a comment",
}


# How a group role reads in a sentence ("made you a moderator of ...").
ROLE_NAMES = {"owner": "an owner", "moderator": "a moderator", "member": "a member"}


def is_recent(moment: datetime, *, newer_than_hours: float, now: datetime | None = None) -> bool:
    """Whether content of `moment` is new enough to tell anyone about."""
    return moment >= (now or utcnow()) - timedelta(hours=newer_than_hours)


def name_of(session: Session, user_id: UUID | None) -> str:
    """How a person is named in a title: their display name, else @handle, else "Someone"."""
    person = session.get(NotifiedUser, user_id) if user_id is not None else None
    if person is None:
        return "Someone"
    return person.display_name or (f"@{person.handle}" if person.handle else "Someone")


def quoted(title: str | None) -> str:
    return f"“{title}”" if title else ""


def item_url(data: ContentSnapshot) -> str:
    """The item's public API path; answers and comments open their question's page."""
    if data.kind in _KIND_PATHS:
        return f"/api/v1/{_KIND_PATHS[data.kind]}/{data.content_id}"
    return f"/api/v1/questions/{data.thread_id or data.parent_id}"


def thread_title(session: Session, data: ContentSnapshot) -> str | None:
    """The title people know the item by: its own, else its thread's (question, post)."""
    if data.title:
        return data.title
    root = data.thread_id or data.parent_id
    if root is None or root == data.content_id:
        return None  # the item is its thread's root, and has no title
    row = session.get(NotifiedContent, root)
    return row.title if row is not None else None


def where_phrase(data: ContentSnapshot, title: str | None) -> str:
    """ "in “Rotating keys”", "in an answer to “Q”", "in a post"."""
    if title is None:
        return f"in {_KIND_NAMES[data.kind]}"
    if data.kind in ("answer", "comment", "reply"):
        return f"in {_KIND_NAMES[data.kind]} on {quoted(title)}"
    return f"in {quoted(title)}"


def notify_content(
    *,
    session: Session,
    data: ContentSnapshot,
    created: bool,
    event_id: UUID,
    newer_than_hours: float,
) -> None:
    """Mentions (on create and edit), and reply/answer/comment to the parent's author."""
    if not is_recent(data.updated_at, newer_than_hours=newer_than_hours):
        return
    title = thread_title(session, data)
    actor = name_of(session, data.author_id)
    gate = private_group_of(data.group_id, data.visibility)
    common = {
        "url": item_url(data),
        "item_kind": data.kind,
        "item_id": data.content_id,
        "thread_id": data.thread_id,
        "actor_id": data.author_id,
        "group_id": gate,
        "source_event_id": event_id,
    }
    mentioned = _mentioned_people(session, data.mentions)
    for person in mentioned:
        do_notify(
            session=session,
            user_id=person,
            kind="mention",
            dedupe_key=f"mention:{data.content_id}",
            group_key=f"mention:{data.content_id}",
            title=f"{actor} mentioned you {where_phrase(data, title)}",
            reason="you were mentioned",
            details={"subject": title},
            **common,  # type: ignore[arg-type]
        )
    if created and data.kind in ("reply", "answer", "comment") and data.parent_id is not None:
        parent = session.get(NotifiedContent, data.parent_id)
        if parent is None or parent.deleted or parent.author_id in mentioned:
            return  # a mention already told them about this item
        kind, title_text, reason = _response_words(data.kind, parent.kind, actor, title)
        group_key = f"{kind}:{data.parent_id if kind != 'answer' else data.thread_id}"
        do_notify(
            session=session,
            user_id=parent.author_id,
            kind=kind,  # type: ignore[arg-type]
            dedupe_key=f"{kind}:{data.content_id}",
            group_key=group_key,
            title=title_text,
            reason=reason,
            details={"subject": title, "parent_kind": parent.kind},
            **common,  # type: ignore[arg-type]
        )


def _response_words(
    kind: str, parent_kind: str, actor: str, title: str | None
) -> tuple[str, str, str]:
    """(notification kind, title, reason) for a reply, answer or comment on your item."""
    on = f" {quoted(title)}" if title else ""
    if kind == "reply":
        return "reply", f"{actor} replied to your post{on}", "you wrote the post"
    if kind == "answer":
        return "answer", f"{actor} answered{on or ' your question'}", "you asked this question"
    whose = "answer" if parent_kind == "answer" else "question"
    reason = "you wrote this answer" if whose == "answer" else "you asked this question"
    return "comment", f"{actor} commented on your {whose}{on}", reason


def _mentioned_people(session: Session, mentions: list[str]) -> list[UUID]:
    handles = sorted({normalise_handle(handle) for handle in mentions} - {""})
    if not handles:
        return []
    people = session.exec(
        select(NotifiedUser.user_id).where(in_list(NotifiedUser.handle, handles))
    ).all()
    return list(people)


def notify_accepted(*, session: Session, data: AnswerAccepted, event_id: UUID) -> None:
    """The answer's author learns it was accepted (not when they accepted their own)."""
    if data.answer_id is None or data.answer_author_id is None:
        return
    question = session.get(NotifiedContent, data.question_id)
    title = question.title if question is not None else None
    do_notify(
        session=session,
        user_id=data.answer_author_id,
        kind="accepted",
        dedupe_key=f"accepted:{data.answer_id}",
        group_key=f"accepted:{data.answer_id}",
        title=f"{name_of(session, data.accepted_by)} accepted your answer"
        + (f" to {quoted(title)}" if title else ""),
        reason="your answer was accepted",
        url=f"/api/v1/questions/{data.question_id}",
        item_kind="answer",
        item_id=data.answer_id,
        thread_id=data.question_id,
        actor_id=data.accepted_by,
        group_id=private_group_of(data.group_id, data.visibility),
        details={"subject": title},
        source_event_id=event_id,
    )


def notify_routed(*, session: Session, data: QuestionRouted, event_id: UUID) -> None:
    """The person asked learns why; from round 2 the asker learns it went to more people."""
    gate = private_group_of(data.group_id, data.visibility)
    url = f"/api/v1/questions/{data.question_id}"
    evidence = [item.model_dump(mode="json") for item in data.evidence]
    told = do_notify(
        session=session,
        user_id=data.user_id,
        kind="routed",
        dedupe_key=f"routed:{data.question_id}",
        group_key=f"routed:{data.question_id}",
        title=f"{name_of(session, data.asker_id)} needs your help with {quoted(data.title)}",
        reason=f"you were asked because {data.reason}",
        url=url,
        item_kind="question",
        item_id=data.question_id,
        thread_id=data.question_id,
        actor_id=data.asker_id,
        group_id=gate,
        details={
            "subject": data.title,
            "round": data.round,
            "escalation": data.round >= 2,
            "evidence": evidence,
        },
        source_event_id=event_id,
    )
    if data.round < 2 or told is None:
        return
    dedupe_key = f"escalated:{data.question_id}:{data.round}"
    created = do_notify(
        session=session,
        user_id=data.asker_id,
        kind="escalated",
        dedupe_key=dedupe_key,
        group_key=f"escalated:{data.question_id}",
        title=f"Your question {quoted(data.title)} went to 1 more person",
        reason="you asked this question and it is still unanswered",
        url=url,
        item_kind="question",
        item_id=data.question_id,
        thread_id=data.question_id,
        group_id=gate,
        details={"subject": data.title, "round": data.round, "asked": [str(data.user_id)]},
        source_event_id=event_id,
    )
    if created is None:
        _count_escalation(session, data, dedupe_key)


def _count_escalation(session: Session, data: QuestionRouted, dedupe_key: str) -> None:
    """One notice per round: a later person of the same round raises its count, silently."""
    notice = session.exec(
        select(Notification).where(
            Notification.user_id == data.asker_id, Notification.dedupe_key == dedupe_key
        )
    ).first()
    if notice is None:
        return  # the asker turned escalations off
    asked = set(notice.details.get("asked", [])) | {str(data.user_id)}
    if len(asked) == len(notice.details.get("asked", [])):
        return
    notice.details = {**notice.details, "asked": sorted(asked)}
    people = "person" if len(asked) == 1 else "people"
    notice.title = f"Your question {quoted(data.title)} went to {len(asked)} more {people}"
    session.add(notice)


def notify_membership(
    *,
    session: Session,
    data: GroupMemberAdded,
    previous_role: str | None,
    was_active: bool,
    event_id: UUID,
) -> None:
    """Added to a group, or given another role, by someone else."""
    if data.added_by is None or data.added_by == data.user_id:
        return  # joined (or created) it themselves, or an event from before `added_by`
    group = session.get(NotifiedGroup, data.group_id)
    label = quoted(group.name) if group is not None and group.name else "a group"
    actor = name_of(session, data.added_by)
    gate = data.group_id if data.visibility == "private" else None
    common = {
        "url": f"/api/v1/groups/{data.group_id}",
        "item_kind": None,
        "item_id": data.group_id,
        "actor_id": data.added_by,
        "group_id": gate,
        "details": {"subject": group.name if group else None, "role": data.role},
        "source_event_id": event_id,
    }
    if not was_active:
        do_notify(
            session=session,
            user_id=data.user_id,
            kind="group_added",
            dedupe_key=f"group_added:{data.group_id}:{data.version or event_id}",
            group_key=f"group_added:{data.group_id}",
            title=f"{actor} added you to {label}",
            reason=f"you are now {ROLE_NAMES[data.role]} of it",
            **common,  # type: ignore[arg-type]
        )
    elif previous_role != data.role:
        do_notify(
            session=session,
            user_id=data.user_id,
            kind="role_changed",
            dedupe_key=f"role_changed:{data.group_id}:{data.version or event_id}",
            group_key=f"role_changed:{data.group_id}",
            title=f"{actor} made you {ROLE_NAMES[data.role]} of {label}",
            reason="your role in the group changed",
            **common,  # type: ignore[arg-type]
        )


def notify_digest(*, session: Session, data: DigestReady, event_id: UUID) -> None:
    """A person's digest is ready; its sections travel along for the e-mail."""
    until = data.until
    count = data.total_items
    do_notify(
        session=session,
        user_id=data.user_id,
        kind="digest",
        dedupe_key=f"digest:{data.period}:{until.isoformat()}",
        group_key=f"digest:{data.period}",
        title=f"Your {data.period} digest: {count} new item{'s' if count != 1 else ''}",
        reason=f"you get a {data.period} digest of what you follow",
        url=f"/api/v1/digests/me?period={data.period}&until={until.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        details={
            "period": data.period,
            "since": data.since.isoformat(),
            "until": until.isoformat(),
            "total_items": count,
            "sections": [section.model_dump(mode="json") for section in data.sections],
        },
        source_event_id=event_id,
    )
