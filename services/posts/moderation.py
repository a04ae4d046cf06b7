"""Moderation: a group's moderators and owner (and administrators) hide posts and show them again.

A hidden post disappears from reads and lists for everyone else; its next version goes out
with `hidden` set and no text, so search and digests drop it, and showing it again sends its
whole state at a higher version. Each change is reported to identity's audit log.
"""

from uuid import UUID

from fastapi import Request
from sqlmodel import Session

from services.posts.access import IdentityGroups, check_moderator
from services.posts.models import Post
from services.posts.service import SOURCE, check_post, flush_or_conflict, post_snapshot
from shared.auth import Principal
from shared.events.contracts import AuditReported, PostUpdated
from shared.events.outbox import record_event
from shared.ids import utcnow
from shared.observability import client_address, request_id_var


def check_moderated_post(
    *, session: Session, principal: Principal, post_id: UUID, identity: IdentityGroups
) -> Post:
    """A post the caller may read and moderate (404 if unreadable, 403 if not theirs to hide)."""
    post = check_post(session=session, principal=principal, post_id=post_id, identity=identity)
    check_moderator(session=session, principal=principal, group_id=post.group_id, identity=identity)
    return post


def do_set_hidden(
    *, session: Session, principal: Principal, post: Post, hidden: bool, request: Request | None
) -> Post:
    """Hide or show a post (nothing changes if it already is); tells consumers and the audit."""
    if (post.hidden_at is not None) == hidden:
        return post
    now = utcnow()
    post.hidden_at = now if hidden else None
    post.hidden_by = principal.user_id if hidden else None
    post.version += 1
    post.updated_at = now
    session.add(post)
    flush_or_conflict(session)
    record_event(session, post_snapshot(post, PostUpdated), source=SOURCE)
    details: dict[str, str] = {"kind": post.kind}
    if post.group_id is not None:
        details["group_id"] = str(post.group_id)
    record_event(
        session,
        AuditReported(
            actor_id=principal.user_id,
            action="content.hidden" if hidden else "content.shown",
            target=f"post:{post.id}",
            at=now,
            ip=client_address(request) if request is not None else None,
            request_id=request_id_var.get(),
            details=details,
        ),
        source=SOURCE,
    )
    return post
