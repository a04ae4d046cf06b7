"""Moderation endpoints: hide a post, show it again (the group's moderators, owner, admins)."""

from uuid import UUID

from fastapi import APIRouter, Request, Response

from services.posts import moderation
from services.posts.access import IdentityDep
from services.posts.routes import NOT_FOUND, item_etag, posts_public
from services.posts.schemas import PostPublic
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.preconditions import WITH_ETAG

router = APIRouter(route_class=IdempotentRoute)

MODERATE = {
    **WITH_ETAG,
    **NOT_FOUND,
    403: {"description": "Not a moderator or the owner of the post's group, nor an admin"},
}


def set_hidden(
    *,
    post_id: UUID,
    hidden: bool,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    request: Request,
    response: Response,
) -> PostPublic:
    post = moderation.check_moderated_post(
        session=session, principal=principal, post_id=post_id, identity=identity
    )
    post = moderation.do_set_hidden(
        session=session, principal=principal, post=post, hidden=hidden, request=request
    )
    response.headers["ETag"] = item_etag(post)
    return posts_public(session, principal, [post])[0]


@router.put("/posts/{post_id}/hidden", tags=["moderation"], responses=MODERATE)
def hide_post(
    post_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    request: Request,
    response: Response,
) -> PostPublic:
    """Hide a post or reply: only the group's moderators, its owner and admins still see it."""
    return set_hidden(
        post_id=post_id,
        hidden=True,
        principal=principal,
        session=session,
        identity=identity,
        request=request,
        response=response,
    )


@router.delete("/posts/{post_id}/hidden", tags=["moderation"], responses=MODERATE)
def show_post(
    post_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    identity: IdentityDep,
    request: Request,
    response: Response,
) -> PostPublic:
    """Show a hidden post again, to everyone who may read it."""
    return set_hidden(
        post_id=post_id,
        hidden=False,
        principal=principal,
        session=session,
        identity=identity,
        request=request,
        response=response,
    )
